"""Scrape tests for CONTRACT.md §3: every metric name with its label names on the real workers'
/metrics (search and chronicle) and on the API's /metrics, there before the first event (zeros);
lag and oldest age exclude failed rows and return to 0 after a terminal failure, with
outbox_failed_events showing the failed row; outbox_produced_total counts only committed writes."""
from __future__ import annotations

import urllib.request
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.outbox_helpers import WorkerProcess, add_event, put_search_row, status_counts, wait_until
from wordloom.api import create_app
from wordloom.settings import ApiSettings

pytestmark = pytest.mark.integration
# An env file another in-process test loaded into os.environ may carry per-projection ports (they win
# over worker_env's OUTBOX_METRICS_PORT=0): pin them to "any free port".
FREE_METRICS_PORTS = {"SEARCH_OUTBOX_METRICS_PORT": "0", "CHRONICLE_OUTBOX_METRICS_PORT": "0"}

# CONTRACT.md §3, name -> label names (histograms: the _bucket/_sum/_count samples, `le` aside).
WORKER_METRICS = {
    "outbox_processed_total": {"projection", "op"},
    "outbox_failed_total": {"projection", "op", "reason"},
    "outbox_retry_scheduled_total": {"projection", "op", "reason"},
    "outbox_terminal_failed_total": {"projection", "op", "reason"},
    "outbox_idempotent_noop_total": {"projection", "op", "reason"},
    "outbox_owner_mismatch_skips_total": {"projection"},
    "outbox_lag_events": {"projection"},
    "outbox_oldest_age_seconds": {"projection"},
    "outbox_inflight_events": {"projection"},
    "outbox_stuck_processing_events": {"projection"},
    "outbox_last_success_timestamp_seconds": {"projection"},
    "outbox_failed_events": {"projection"},  # issue 6: failed rows, out of the lag
    "projection_rebuild_duration_seconds": {"projection"},
    "projection_rebuild_last_finished_timestamp_seconds": {"projection"},
    "projection_rebuild_last_success": {"projection"},
}
ES_METRICS = {
    "outbox_es_bulk_requests_total": {"projection", "result"},
    "outbox_es_bulk_items_total": {"projection", "op", "result"},
    "outbox_es_bulk_item_failures_total": {"projection", "op", "failure_class"},
    "outbox_es_bulk_request_duration_seconds": {"projection"},
}
API_METRICS = {"outbox_produced_total": {"event_type", "entity_type"}}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def samples(text: str) -> dict[str, list[tuple[dict, float]]]:
    """sample name -> [(labels, value)], histogram samples folded into the histogram's name."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            name = family.name if family.type == "histogram" else s.name
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            out.setdefault(name, []).append((labels, s.value))
    return out


def families(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)} | {
        f.name + "_total" for f in text_string_to_metric_families(text) if f.type == "counter"}


def value(text: str, name: str, **labels) -> float | None:
    for got, v in samples(text).get(name, []):
        if got == labels:
            return v
    return None


def assert_contract(text: str, expected: dict, projection: str | None) -> None:
    found = samples(text)
    for name, label_names in expected.items():
        assert name in found, f"{name} has no sample (dashboards would show no data)"
        for labels, v in found[name]:
            assert set(labels) == label_names, (name, labels)
            if projection is not None:
                assert labels["projection"] in (projection, "search_sot_to_search_index", "search_index_to_elastic",
                                                "chronicle_events_to_entries"), (name, labels)


def test_worker_metrics_are_all_there_before_any_event_and_lag_returns_to_zero(conn, worker_env):
    poison = uuid.uuid4()
    env = {**worker_env, **FREE_METRICS_PORTS,
           "OUTBOX_DB_PING_INTERVAL_SECONDS": "0.2", "OUTBOX_POLL_INTERVAL_SECONDS": "0.2"}
    with WorkerProcess("search", env, OUTBOX_FAULT_INJECT_KIND="deterministic",
                       OUTBOX_FAULT_INJECT_ENTITY_ID=str(poison)) as search, \
            WorkerProcess("chronicle", env) as chronicle:
        search_port, chronicle_port = search.health_port(), chronicle.health_port()

        # -- before any event: every name, every label set, zeros ------------------------------------
        text = scrape(search_port)
        assert_contract(text, {**WORKER_METRICS, **ES_METRICS}, "search")
        assert value(text, "outbox_processed_total", projection="search", op="upsert") == 0
        assert value(text, "outbox_terminal_failed_total", projection="search", op="upsert",
                     reason="es_4xx") == 0
        assert value(text, "outbox_idempotent_noop_total", projection="search", op="delete", reason="es_404") == 0
        assert value(text, "outbox_es_bulk_requests_total", projection="search", result="ok") == 0
        ctext = scrape(chronicle_port)
        assert_contract(ctext, WORKER_METRICS, "chronicle")
        # the chronicle worker never calls Elasticsearch: the names are declared, with no series
        assert set(ES_METRICS) <= families(ctext) and not set(ES_METRICS) & set(samples(ctext))
        assert value(ctext, "outbox_failed_total", projection="chronicle", op="upsert",
                     reason="deterministic_exception") == 0
        # never rebuilt: not a failure (the documented `== 0` alert must stay quiet), nothing finished yet
        assert value(ctext, "projection_rebuild_last_success", projection="chronicle_events_to_entries") == 1
        assert value(ctext, "projection_rebuild_last_finished_timestamp_seconds",
                     projection="chronicle_events_to_entries") == 0

        # -- one good event, one that fails terminally ----------------------------------------------
        good = uuid.uuid4()
        for entity in (good, poison):
            put_search_row(conn, "book", entity, "metrics", 1)
            add_event(conn, "search", "book", entity, "upsert", 1)
        wait_until(lambda: status_counts(conn, "search") == {"done": 1, "failed": 1}, 20, message="settled")

        def settled_gauges():
            t = scrape(search_port)
            return t if value(t, "outbox_failed_events", projection="search") == 1 else None
        text = wait_until(settled_gauges, 10, interval=0.1, message="gauges refreshed")
        assert value(text, "outbox_lag_events", projection="search") == 0  # failed rows are not lag
        assert value(text, "outbox_oldest_age_seconds", projection="search") == 0
        assert value(text, "outbox_inflight_events", projection="search") == 0
        assert value(text, "outbox_terminal_failed_total", projection="search", op="upsert",
                     reason="deterministic_exception") == 1
        assert value(text, "outbox_failed_total", projection="search", op="upsert",
                     reason="deterministic_exception") == 1
        assert value(text, "outbox_processed_total", projection="search", op="upsert") == 1
        assert value(text, "outbox_last_success_timestamp_seconds", projection="search") > 0
        assert_contract(text, {**WORKER_METRICS, **ES_METRICS}, "search")


def test_api_metrics_outbox_produced_total_is_there_at_zero_and_counts_only_commits(stack, db_url, es_index,
                                                                                    monkeypatch):
    from wordloom.domain import unit as unit_module

    settings = ApiSettings(database_url=db_url, elastic_url=stack.elastic_url, elastic_index=es_index,
                           elastic_api_key=None, host="127.0.0.1", port=0, wordloom_env="test")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client, \
            psycopg.connect(db_url, autocommit=True) as conn:
        text = client.get("/metrics").text
        assert_contract(text, API_METRICS, None)
        before = value(text, "outbox_produced_total", event_type="block_created", entity_type="block")
        before_chron = value(text, "outbox_produced_total", event_type="block_created", entity_type="chronicle_event")
        assert before is not None and before_chron is not None  # pre-registered: 0 in a fresh process

        lib = client.post("/api/v1/libraries", json={"name": "m"}).json()
        book = client.post("/api/v1/books", json={"library_id": lib["id"], "title": "m"}).json()
        assert client.post("/api/v1/blocks", json={"book_id": book["id"], "content": "counted"}).status_code == 201
        text = client.get("/metrics").text
        assert value(text, "outbox_produced_total", event_type="block_created", entity_type="block") == before + 1
        assert value(text, "outbox_produced_total", event_type="block_created",
                     entity_type="chronicle_event") == before_chron + 1

        # A write that fails after its search outbox row was queued: rolled back, never counted.
        outbox_rows = conn.execute("SELECT count(*) FROM search_outbox_events").fetchone()[0]

        def failing_chronicle(self, *args, **kwargs):
            raise RuntimeError("chronicle insert failed")
        monkeypatch.setattr(unit_module.WriteUnit, "chronicle", failing_chronicle)
        response = client.post("/api/v1/blocks", json={"book_id": book["id"], "content": "rolled back"})
        assert response.status_code == 500
        text = client.get("/metrics").text
        assert value(text, "outbox_produced_total", event_type="block_created", entity_type="block") == before + 1
        assert conn.execute("SELECT count(*) FROM search_outbox_events").fetchone()[0] == outbox_rows
