"""Every command that writes refuses another environment's database before touching it.

A user test pointed `WORDLOOM_ENV=test` tools at the dev database: the workers, the API and the
importer refused, but the rebuilds, replay, prune and rebuild-es went ahead and changed it.  The
guard now lives in the command base (`guards_environment`), so no writer can forget it.
"""
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from wordloom.commands.base import run_command

REPO = Path(__file__).resolve().parents[2]

WRITERS = [
    ("replay_failed", ["--outbox", "search", "--by", "me", "--reason", "test"]),
    ("rebuild_search_index", ["--truncate", "--emit-outbox"]),
    ("rebuild_chronicle_entries", ["--truncate", "--emit-outbox"]),
    ("rebuild_es", []),
    ("outbox_prune", ["--older-than", "1s"]),
    ("dev_import", ["--python-docs"]),
    ("labs_insert_search_pending", []),
    ("labs_insert_chronicle_pending", []),
]


def _table_counts(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM search_outbox_events), (SELECT count(*) FROM chronicle_outbox_events),"
            " (SELECT count(*) FROM search_index), (SELECT count(*) FROM books)").fetchone()


@pytest.mark.parametrize("module,argv", WRITERS, ids=[w[0] for w in WRITERS])
def test_writer_refuses_a_database_of_another_environment(module, argv, db_url, es_index, stack, monkeypatch, capsys):
    # db_url's sentinel says "test"; the person's env file says dev.
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ELASTIC_URL", stack.elastic_url)
    monkeypatch.setenv("ELASTIC_INDEX", es_index)
    monkeypatch.setenv("WORDLOOM_ENV", "dev")
    before = _table_counts(db_url)
    code = run_command(module, [*argv, "--env-file", str(REPO / ".env.dev")], prog=module)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "refusing to start: WORDLOOM_ENV=dev" in err[0] and "marked test" in err[0], err
    assert _table_counts(db_url) == before


def test_writer_runs_when_the_environment_matches(db_url, monkeypatch, capsys):
    """The control: the same command against a database of its own environment works."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WORDLOOM_ENV", "test")
    assert run_command("replay_failed", ["--outbox", "search", "--by", "me", "--reason", "t", "--dry-run",
                                         "--env-file", str(REPO / ".env.test")], prog="replay") == 0
    assert "Matched failed rows: 0" in capsys.readouterr().out


def test_legacy_replay_path_refuses_too(db_url, worker_env):
    env = dict(worker_env, WORDLOOM_ENV="dev")
    proc = subprocess.run([sys.executable, "backend/scripts/search_outbox_replay_failed.py", "--by", "me",
                           "--reason", "x", "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "refusing to start" in proc.stderr and proc.stdout == ""


def test_output_into_a_closed_pipe_ends_quietly(db_url, worker_env):
    """`cmd | head -1`: no traceback and no CRITICAL line when the reader leaves early."""
    # 5,000 ids on stdout, the reader takes one line and leaves: the writer must hit a closed pipe.
    env = dict(worker_env, OUTBOX_INSERT_COUNT="5000", LOG_LEVEL="WARNING")
    script = (f"{sys.executable} backend/scripts/cli.py labs insert-search-pending --env-file .env.test"
              " | head -n 1")
    proc = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert "CRITICAL" not in proc.stderr, proc.stderr
