"""Issue 6, last "Done when": run the stack with a password in every URL and an API key for
Elasticsearch, exercise the failures people meet, then scan EVERY captured line (stdout and stderr
of every process, span files, error text the tools print) for the secrets.  None may appear.

The embedded PostgreSQL trusts loopback and the embedded search server ignores credentials, so the
secrets are carried everywhere a real deployment carries them while the stack still works.  The
database password has odd characters (`:@/%`), percent-encoded in the URL as libpq expects.
"""
from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from tests.support.outbox_helpers import WorkerProcess, add_event, put_search_row, status_counts, wait_until
from wordloom.devstack.ports import free_port

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]

TAG = uuid.uuid4().hex[:8]
DB_PASSWORD = f"Db:pw@{TAG}/x%y"           # raw; the URL carries it percent-encoded
DB_PASSWORD_URL = quote(DB_PASSWORD, safe="")
ES_PASSWORD = f"Es-pw-{TAG}"
API_KEY = f"ak-{TAG}-secret"
SECRETS = {
    "db password": DB_PASSWORD, "db password (url-encoded)": DB_PASSWORD_URL, "es password": ES_PASSWORD,
    "api key": API_KEY, "es basic header": base64.b64encode(f"elastic:{ES_PASSWORD}".encode()).decode(),
}


def with_credentials(url: str, user: str, password_in_url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, f"{user}:{password_in_url}@{p.hostname}:{p.port}", p.path, p.query, p.fragment))


def closed_port_url(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc.replace(f":{p.port}", f":{free_port()}"), p.path, p.query, p.fragment))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "wordloom.cli", *args]


def run_parallel(jobs: list[tuple[str, list[str], dict]], timeout: float = 60) -> dict[str, subprocess.CompletedProcess]:
    """Start every command at once (each is a cold Python start), then collect them all."""
    procs = {label: subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True) for label, argv, env in jobs}
    results = {}
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        results[label] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


# Raise, inside the real worker loop, an exception whose text holds every secret (as a careless
# library might), so the worker logs a real traceback through its logging setup.
TRACEBACK_WORKER = """
import os, sys
from wordloom.outbox import runner
def boom(self, *args):
    raise RuntimeError("reclaim failed for " + os.environ["DATABASE_URL"] + " via " + os.environ["ELASTIC_URL"]
                       + " with ApiKey " + os.environ["ELASTIC_API_KEY"] + " password=" + os.environ["RAW_DB_PASSWORD"])
runner.Runner._maybe_reclaim = boom
from wordloom.cli import main
sys.exit(main(["ops", "search-worker", "--env-file", sys.argv[1]]))
"""
# An uncaught exception in the main thread of a command (after logging is set up).
CRASHING_COMMAND = """
import os, sys
from wordloom.commands import outbox_status
def handle(self, args):
    raise ValueError("status query failed on " + os.environ["DATABASE_URL"] + " key " + os.environ["ELASTIC_API_KEY"])
outbox_status.COMMAND.handle = handle.__get__(outbox_status.COMMAND)
from wordloom.cli import main
sys.exit(main(["outbox", "status", "--env-file", sys.argv[1]]))
"""


def test_no_secret_reaches_any_output(stack, db_url, es_index, worker_env, tmp_path):
    var_dir = tmp_path / "var"
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    # Per-projection ports from an env file another test loaded into os.environ would win over
    # worker_env's OUTBOX_METRICS_PORT=0.
    env = {**worker_env, "SEARCH_OUTBOX_METRICS_PORT": "0", "CHRONICLE_OUTBOX_METRICS_PORT": "0", 
           "DATABASE_URL": with_credentials(db_url, "postgres", DB_PASSWORD_URL),
           "ELASTIC_URL": with_credentials(stack.elastic_url, "elastic", ES_PASSWORD),
           "ELASTIC_API_KEY": API_KEY, "WORDLOOM_VAR_DIR": str(var_dir), "RAW_DB_PASSWORD": DB_PASSWORD,
           "OUTBOX_POLL_INTERVAL_SECONDS": "0.2", "OUTBOX_BASE_BACKOFF_SECONDS": "0.1",
           "JAEGER_QUERY_URL": f"http://jaeger:{ES_PASSWORD}@127.0.0.1:{free_port()}/api"}
    db_down = {**env, "DATABASE_URL": closed_port_url(env["DATABASE_URL"])}
    es_down = {**env, "ELASTIC_URL": closed_port_url(env["ELASTIC_URL"]), "OUTBOX_RUN_SECONDS": "2.5",
               "OUTBOX_REQUIRE_ES_READY": "1"}
    captured: list[tuple[str, str]] = []
    ef = str(empty_env_file)

    # The database really is reachable with the password-bearing URL (trust auth ignores it).
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("SELECT 1")

    # -- the API: startup line, a good write, failing writes ------------------------------------------
    port = free_port()
    api = subprocess.Popen(cli("ops", "api", "--env-file", ef), env={**env, "API_HOST": "127.0.0.1",
                                                                      "API_PORT": str(port)},
                           cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    poison = uuid.uuid4()
    with psycopg.connect(db_url, autocommit=True) as conn:
        good = uuid.uuid4()
        for entity in (good, poison):
            put_search_row(conn, "book", entity, "secret drill", 1)
            add_event(conn, "search", "book", entity, "upsert", 1)

        # -- a working worker (ES with user:password@ and an API key) and one row that fails ---------
        with WorkerProcess("search", env, OUTBOX_FAULT_INJECT_KIND="deterministic",
                           OUTBOX_FAULT_INJECT_ENTITY_ID=str(poison)) as worker:
            base = f"http://127.0.0.1:{port}/api/v1"
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                        assert json.load(r)["ok"] is True
                    break
                except OSError:
                    assert api.poll() is None and time.monotonic() < deadline, "API did not come up"
                    time.sleep(0.1)

            def post(path, body):
                req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as exc:
                    return exc.code, exc.read().decode()

            lib = json.loads(post("/libraries", {"name": "s"})[1])
            assert post("/books", {"library_id": lib["id"], "title": "t"})[0] == 201
            assert post("/blocks", {"book_id": str(uuid.uuid4()), "content": "x"})[0] == 404
            assert post("/books", {"library_id": str(uuid.uuid4()), "title": "t"})[0] in (404, 409)
            assert post("/blocks", {"content": "missing book id"})[0] == 422
            captured.append(("api responses", "(statuses checked)"))
            wait_until(lambda: status_counts(conn, "search").get("failed") == 1
                       and status_counts(conn, "search").get("done", 0) >= 2, 20, message="worker settled")
            worker.terminate()
            assert worker.wait(10) == 0
        captured.append(("search worker", "\n".join(worker.lines)))
    api.send_signal(signal.SIGTERM)
    out, err = api.communicate(timeout=15)
    assert api.returncode == 0
    captured.append(("api stdout", out))
    captured.append(("api stderr", err))
    assert "starting wordloom-api" in err

    # -- everything else, in parallel --------------------------------------------------------------
    # A pending row for the worker that cannot reach Elasticsearch (the traceback worker never
    # claims: its loop fails before the claim).
    with psycopg.connect(db_url, autocommit=True) as conn:
        pending = uuid.uuid4()
        put_search_row(conn, "book", pending, "es is down", 1)
        add_event(conn, "search", "book", pending, "upsert", 1)
    mismatch = {**env, "WORDLOOM_ENV": "dev"}
    results = run_parallel([
        ("worker traceback", [sys.executable, "-c", TRACEBACK_WORKER, ef], {**env, "OUTBOX_RUN_SECONDS": "1.5"}),
        ("worker es down", cli("ops", "search-worker", "--env-file", ef), es_down),
        ("worker env mismatch", cli("ops", "search-worker", "--env-file", ef), mismatch),
        ("worker bad value", cli("ops", "search-worker", "--env-file", ef), {**env, "OUTBOX_BATCH_SIZE": "lots"}),
        ("bad flag", cli("ops", "replay-failed", "--outbox", "search", "--by", "t", "--reason", "r", "--bogus",
                         "--env-file", ef), env),
        ("status", [sys.executable, "backend/scripts/cli.py", "outbox", "status", "--env-file", ef], env),
        ("status db down", cli("outbox", "status", "--env-file", ef), db_down),
        ("crashing command", [sys.executable, "-c", CRASHING_COMMAND, ef], env),
        ("export-jaeger jaeger down", cli("labs", "export-jaeger", "--service", "wordloom-search-outbox-worker",
                                          "--outdir", str(tmp_path / "exports"), "--env-file", ef), env),
    ])
    # The worker that cannot reach Elasticsearch stored its errors; now the tools print them.
    results.update(run_parallel([
        ("status after failures", cli("outbox", "status", "--json", "--env-file", ef), env),
        ("replay dry-run", cli("ops", "replay-failed", "--outbox", "search", "--by", "t", "--reason", "r",
                               "--dry-run", "--env-file", ef), env),
        ("legacy replay dry-run", [sys.executable, "backend/scripts/search_outbox_replay_failed.py",
                                   "--by", "t", "--reason", "r", "--dry-run"], env),
    ]))
    for label, result in results.items():
        captured.append((f"{label} stdout", result.stdout))
        captured.append((f"{label} stderr", result.stderr))

    # -- the failures really happened (else the scan proves little) -----------------------------------
    text_of = {label: r.stdout + r.stderr for label, r in results.items()}
    assert "unexpected error in the worker loop" in text_of["worker traceback"]
    assert "Traceback" in text_of["worker traceback"] and "RuntimeError: reclaim failed for" in \
        text_of["worker traceback"].replace("\\n", "\n")
    assert "refusing to start: WORDLOOM_ENV=dev" in text_of["worker env mismatch"]
    assert results["worker bad value"].returncode == 2 and "OUTBOX_BATCH_SIZE" in text_of["worker bad value"]
    assert results["bad flag"].returncode == 2 and "--bogus" in text_of["bad flag"]
    assert "cannot connect to PostgreSQL" in text_of["status db down"] and results["status db down"].returncode == 1
    assert "Matched failed rows: 1; will replay: 1" in text_of["replay dry-run"]
    assert "Matched failed rows" in text_of["legacy replay dry-run"]
    assert results["status"].returncode == 0 and results["status after failures"].returncode == 0
    assert "uncaught exception" in text_of["crashing command"] and "ValueError" in text_of["crashing command"]
    assert "Jaeger query API not reachable" in text_of["export-jaeger jaeger down"]
    assert "es_connect" in text_of["worker es down"] or "does not answer" in text_of["worker es down"]

    # -- every span file, every error text the database keeps for the tools ----------------------------
    for path in sorted(var_dir.rglob("*")):
        if path.is_file():
            captured.append((str(path.relative_to(tmp_path)), path.read_text(errors="replace")))
    with psycopg.connect(db_url, autocommit=True) as conn:
        errors = conn.execute("SELECT coalesce(string_agg(error, '\n'), '') FROM search_outbox_events").fetchone()[0]
    captured.append(("search_outbox_events.error", errors))

    leaks = [(where, name) for where, text in captured for name, secret in SECRETS.items() if secret in text]
    assert not leaks, f"secrets leaked: {leaks}"
    # Every line our processes wrote to stderr as logs is one JSON object (plain lines are the
    # documented one-line errors of the command base, argparse usage, or deprecation hints).
    assert all(json.loads(line) for line in captured[1][1].splitlines())


def test_the_scan_would_catch_a_leak():
    """Guard for the test above: the same scan over a raw (unredacted) line finds every secret."""
    raw = (f"postgresql://postgres:{DB_PASSWORD_URL}@h/db password={DB_PASSWORD} http://elastic:{ES_PASSWORD}@h "
           f"ApiKey {API_KEY} Authorization: Basic {SECRETS['es basic header']}")
    assert {name for name, secret in SECRETS.items() if secret in raw} == set(SECRETS)
