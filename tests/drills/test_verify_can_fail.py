"""A verify that cannot fail is a defect: for every drill, switch its fault off (`--no-fault`) or
break its invariant after the run on purpose, and the matching check must fail (exit 1)."""
from __future__ import annotations

import psycopg
import pytest
from elasticsearch import Elasticsearch

from tests.drills.conftest import failed_checks

from wordloom.labs.drills.registry import SCENARIOS


def corrupt_one_document(drill, scenario, run_id):
    """Put one document back one version (a regression the pipeline itself can never cause)."""
    recipe = drill.recipe(scenario, run_id)
    es = Elasticsearch(drill.env["ELASTIC_URL"])
    index = recipe["target"]["index"]
    es.indices.refresh(index=index)
    hit = es.search(index=index, size=1, version=True, query={"range": {"event_version": {"gte": 2}}})["hits"]["hits"][0]
    es.delete(index=index, id=hit["_id"])
    source = {**hit["_source"], "event_version": hit["_version"] - 1}
    es.index(index=index, id=hit["_id"], document=source, version=hit["_version"] - 1, version_type="external")
    es.close()


def lower_one_projection_version(drill, scenario, run_id):
    with psycopg.connect(drill.lab_url(scenario, run_id), autocommit=True) as conn:
        conn.execute("UPDATE chronicle_entries SET projection_version = 1 WHERE id = (SELECT min(id::text)::uuid FROM chronicle_entries)")


FAULT_OFF = {
    "es_429_inject": "fault_observed_es_429",
    "es_write_block_4xx": "fault_observed_es_4xx",
    "es_down_connect": "fault_observed_es_connect",
    "collector_down": "fault_observed_export_failures",
    "es_bulk_partial": "fault_observed_partial_rejects",
    "db_claim_contention": "contention_observed",
    "stuck_reclaim": "fault_observed_killed_holding_rows",
    "duplicate_delivery": "fault_observed_delivered_twice",
    "projection_version": "fault_observed_v1_redelivery",
    "worker_kill_mid_batch": "fault_observed_kill_in_batch",
    "postgres_restart": "fault_observed_db_outage",
    "multi_worker_convergence": None,  # no fault knob: four writers and workers are the drill; see below
}
BROKEN = {
    "duplicate_delivery": (corrupt_one_document, "es_identical_to_first_delivery"),
    "projection_version": (lower_one_projection_version, "lower_version_never_overwrites"),
    "multi_worker_convergence": (corrupt_one_document, "no_version_regression"),
}


def test_every_scenario_has_a_failing_control():
    assert set(FAULT_OFF) == set(SCENARIOS)
    assert all(FAULT_OFF[s] or s in BROKEN for s in SCENARIOS)


@pytest.mark.parametrize("scenario", [s for s, check in FAULT_OFF.items() if check])
def test_verify_fails_without_the_fault(drill, scenario):
    run_id = drill.run(scenario, "--duration", "1", "--no-fault")
    code, result = drill.verify(scenario, run_id)
    assert code == 1, result
    assert FAULT_OFF[scenario] in failed_checks(result), result


@pytest.mark.parametrize("scenario", list(BROKEN))
def test_verify_fails_when_the_invariant_is_broken(drill, scenario):
    run_id = drill.run(scenario, "--duration", "1")
    code, result = drill.verify(scenario, run_id)
    assert code == 0, failed_checks(result)
    breaker, check = BROKEN[scenario]
    breaker(drill, scenario, run_id)
    code, result = drill.verify(scenario, run_id)
    assert code == 1 and check in failed_checks(result), result
    if scenario != "projection_version":
        assert "es_matches_search_index" in failed_checks(result)
