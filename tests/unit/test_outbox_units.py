"""Pure pieces of the outbox engine: bulk chunking (C09), item classification (C05-C08),
experiments, the named queries and the search document."""
import json
import uuid

import pytest

from wordloom.db.queries import query
from wordloom.outbox.experiments import Experiments
from wordloom.outbox.metrics import OutboxMetrics
from wordloom.outbox.sinks.elastic import BulkAction, chunk_by_bytes, classify_item, request_failure_reason
from wordloom.search.index import INDEX_MAPPING, document_from_row, document_id
from wordloom.settings import ConfigError


def action(text, op="upsert", max_=None):
    key = ("block", uuid.uuid4())
    body = {"text": text} if op == "upsert" else None
    return BulkAction.build("idx", op, document_id(*key), 3, key, body)


def test_C09_chunks_are_sized_by_encoded_bytes_not_characters():
    """C09: é, €, emoji and CJK take 2-4 bytes each; chunking by characters would overshoot."""
    text = "é€😀漢字" * 300  # 1500 characters, 4200+ bytes of UTF-8
    actions = [action(text) for _ in range(20)]
    assert len(actions[0].encoded) > 2 * len(text)
    limit = 16 * 1024
    chunks = chunk_by_bytes(actions, limit)
    assert sum(len(c) for c in chunks) == 20 and len(chunks) > 1
    for chunk in chunks:
        assert sum(len(a.encoded) for a in chunk) <= limit
    # the wire format is NDJSON with the real characters (not \\u escapes)
    meta, body = actions[0].encoded.decode("utf-8").splitlines()
    assert json.loads(body)["text"] == text and json.loads(meta)["index"]["version_type"] == "external"


@pytest.mark.parametrize("op", ["upsert", "delete"])
def test_the_metadata_line_is_the_json_of_the_action_even_with_characters_to_escape(op):
    """The metadata line is written by format, not json.dumps (speed): it must still be exactly
    the JSON object, whatever the index name or the entity type holds."""
    key = ('tag "quoted" \\ é\n', uuid.uuid4())
    body = {"text": "x"} if op == "upsert" else None
    a = BulkAction.build('idx-"odd"', op, document_id(*key), 7, key, body)
    meta = json.loads(a.encoded.decode("utf-8").splitlines()[0])
    name = "index" if op == "upsert" else "delete"
    assert meta == {name: {"_index": 'idx-"odd"', "_id": document_id(*key), "version": 7,
                           "version_type": "external"}}
    assert a.encoded.endswith(b"\n") and a.encoded.count(b"\n") == (2 if body else 1)


def test_C08_a_single_oversize_action_gets_a_chunk_of_its_own():
    small, big = action("a"), action("x" * 5000)
    chunks = chunk_by_bytes([small, big, small], 1024)
    assert [len(c) for c in chunks] == [1, 1, 1]


def test_delete_actions_have_no_body_line():
    a = action(None, op="delete")
    lines = a.encoded.decode().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["delete"]["version"] == 3


@pytest.mark.parametrize("op,status,expected", [
    ("upsert", 200, (None, None)), ("upsert", 201, (None, None)),
    ("upsert", 409, (None, "es_409")), ("delete", 409, (None, "es_409")),
    ("delete", 404, (None, "es_404")), ("upsert", 404, ("es_4xx", None)),
    ("upsert", 429, ("es_429", None)), ("upsert", 503, ("es_5xx", None)),
    ("upsert", 400, ("es_4xx", None)), ("upsert", 413, ("es_4xx", None)), ("upsert", 0, ("es_other", None)),
])
def test_bulk_items_are_classified_by_their_own_status(op, status, expected):
    assert classify_item(op, status) == expected


def test_request_level_failures_are_classified():
    from elasticsearch import ConnectionError as ESConnectionError, ConnectionTimeout

    assert request_failure_reason(ConnectionTimeout("t")) == "es_timeout"
    assert request_failure_reason(ESConnectionError("c")) == "es_connect"
    assert request_failure_reason(RuntimeError("?")) == "es_unknown"


def test_experiments_parse_and_inject():
    exp = Experiments.from_mapping({"OUTBOX_EXPERIMENT_ES_429_EVERY_N": "3", "OUTBOX_EXPERIMENT_ES_429_OPS": "index"})
    answers = [exp.synthetic_item(i, "upsert") for i in range(9)]
    assert [a["status"] if a else None for a in answers] == [None, None, 429] * 3
    assert exp.synthetic_item(0, "delete") is None  # ops filter
    partial = Experiments.from_mapping({"OUTBOX_EXPERIMENT_ES_BULK_PARTIAL": "1"})
    assert partial.synthetic_item(0, "upsert")["status"] == 400 and partial.synthetic_item(1, "upsert") is None
    assert Experiments.from_mapping({}).active == []
    with pytest.raises(ConfigError, match="OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS"):
        Experiments.from_mapping({"OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="OUTBOX_FAULT_INJECT_KIND"):
        Experiments.from_mapping({"OUTBOX_FAULT_INJECT_KIND": "meteor"})


def test_every_outbox_query_exists_for_both_tables_and_is_guarded():
    for name in ("outbox_claim_batch", "outbox_renew_lease", "outbox_ack_done", "outbox_schedule_retry",
                 "outbox_mark_failed", "outbox_reclaim_expired", "outbox_release_owned",
                 "outbox_backlog_stats", "outbox_insert_event"):
        for projection, table in (("search", "search_outbox_events"), ("chronicle", "chronicle_outbox_events")):
            sql = query(name, projection)
            assert table in sql and "{outbox}" not in sql
    for name in ("outbox_renew_lease", "outbox_ack_done", "outbox_schedule_retry", "outbox_mark_failed"):
        sql = query(name, "search")
        assert "owner = %(owner)s" in sql and "status = 'processing'" in sql and "lease_until >" in sql
    claim = query("outbox_claim_batch", "search")
    assert "FOR UPDATE SKIP LOCKED" in claim and "now()" in claim


def test_metrics_names_of_the_contract_are_registered():
    m = OutboxMetrics("search")
    names = {metric.name for metric in m.registry.collect()}
    for name in ("outbox_processed", "outbox_failed", "outbox_retry_scheduled", "outbox_terminal_failed",
                 "outbox_idempotent_noop", "outbox_owner_mismatch_skips", "outbox_lag_events",
                 "outbox_oldest_age_seconds", "outbox_inflight_events", "outbox_stuck_processing_events",
                 "outbox_last_success_timestamp_seconds", "projection_rebuild_duration_seconds",
                 "projection_rebuild_last_finished_timestamp_seconds", "projection_rebuild_last_success",
                 "outbox_es_bulk_requests", "outbox_es_bulk_items", "outbox_es_bulk_item_failures",
                 "outbox_es_bulk_request_duration_seconds", "outbox_failed_events"):
        assert name in names, name
    assert m.value("outbox_lag_events", projection="search") == 0
    assert m.value("outbox_processed_total", projection="search", op="delete") == 0


def test_document_from_row_has_the_contract_fields():
    entity_id, library_id = uuid.uuid4(), uuid.uuid4()
    doc = document_from_row({"entity_type": "block", "entity_id": entity_id, "library_id": library_id,
                             "text": "hello", "snippet": "hello", "rank_score": None, "event_version": 4})
    assert doc == {"entity_type": "block", "entity_id": str(entity_id), "library_id": str(library_id),
                   "text": "hello", "snippet": "hello", "rank_score": 0.0, "event_version": 4}
    assert set(doc) == set(INDEX_MAPPING["properties"])
    assert document_id("block", entity_id) == f"block:{entity_id}"
