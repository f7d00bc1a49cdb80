"""The drill verbs' contract: exit codes per failure kind, latest-run selection, no secrets in the
recipe, export into the run folder, clean takes back the database and the index."""
from __future__ import annotations

import json

import psycopg
from elasticsearch import Elasticsearch

from wordloom.devstack.ports import free_port


def test_usage_and_missing_run_codes(drill):
    assert drill.cli("run", "no_such_drill").returncode == 2
    proc = drill.cli("verify", "es_429_inject")
    assert proc.returncode == 3 and "no run of es_429_inject" in proc.stderr
    assert drill.cli("export", "stuck_reclaim", "--run-id", "nope").returncode == 3


def test_environment_missing_is_4(drill):
    drill.env["DATABASE_URL"] = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/x_test"
    proc = drill.cli("run", "es_429_inject", "--duration", "1")
    assert proc.returncode == 4, proc.stderr
    recipe = next(drill.outdir.glob("es_429_inject/*/_recipe.json")).read_text()
    assert "s3cret-pw" not in recipe + proc.stdout + proc.stderr and json.loads(recipe)["status"] == "environment_missing"


def test_latest_run_export_clean(drill, es_index):
    drill.env["DATABASE_URL"] = drill.db_url.replace("postgresql://postgres@", "postgresql://postgres:pw-hidden@")
    first = drill.run("es_429_inject", "--duration", "1")
    second = drill.run("es_429_inject", "--duration", "1")
    run_dir = drill.outdir / "es_429_inject" / second
    assert "pw-hidden" not in (run_dir / "_recipe.json").read_text()
    assert {p.name for p in (run_dir / "metrics").iterdir()} == {"before-w1.prom", "after-w1.prom"}
    assert (run_dir / "logs" / "worker-w1.log").stat().st_size > 0
    proc = drill.cli("verify", "es_429_inject")  # no --run-id: the latest
    assert proc.returncode == 0 and second in proc.stdout, proc.stdout + proc.stderr
    proc = drill.cli("export", "es_429_inject")
    assert proc.returncode == 0, proc.stderr
    traces = list((run_dir / "_exports" / "wordloom-search-outbox-worker").glob("jaeger-traces-*.json"))
    assert traces and json.loads(traces[0].read_text())["data"], "the run's local spans were exported"
    recipe = drill.recipe("es_429_inject", second)
    index, database = recipe["target"]["index"], recipe["lab_database"]
    assert index.startswith(es_index + "-lab-") and database.endswith("_test")
    proc = drill.cli("clean", "es_429_inject", "--keep-last", "1")
    assert proc.returncode == 0, proc.stderr
    assert not (drill.outdir / "es_429_inject" / first).exists() and run_dir.exists()
    with psycopg.connect(drill.db_url, autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    es = Elasticsearch(drill.env["ELASTIC_URL"])
    assert not es.indices.exists(index=index)
    es.close()
    # after clean, verify falls back to the state recorded at the end of the run
    code, result = drill.verify("es_429_inject", second)
    assert code == 0 and result["state_source"] == "recorded"
    proc = drill.cli("report")
    assert proc.returncode == 0 and "| es_429_inject | " + second + " | yes |" in proc.stdout
    assert (drill.outdir / "REPORT.md").exists()
