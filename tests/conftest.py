"""Session-wide real servers and per-test isolation (own database, own index)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "backend"))
sys.path.insert(0, str(REPO_ROOT))

from tests.support.stack import Stack  # noqa: E402

# Nothing a test starts may write into the repo's var/ (traces, logs, lab evidence of a dev stack).
_TEST_VAR = Path(os.environ.get("WORDLOOM_TEST_VAR_DIR") or __import__("tempfile").mkdtemp(prefix="wordloom-var-"))
os.environ["WORDLOOM_VAR_DIR"] = str(_TEST_VAR)


@pytest.fixture(autouse=True)
def _isolated_environ():
    """Commands run in-process load env files into os.environ; never let that leak into the
    next test (it once pointed a later test's workers at .env.dev's fixed ports)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def stack():
    s = Stack.start()
    yield s
    s.stop()


@pytest.fixture
def db_url(stack):
    """A fresh, migrated database for this test (sentinel env=test)."""
    url = stack.new_database("test")
    yield url
    stack.drop_database(url)


@pytest.fixture
def conn(db_url):
    """An autocommit connection to this test's database."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def es(stack):
    """An Elasticsearch client for the session's search server."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(stack.elastic_url)
    yield client
    client.close()


@pytest.fixture
def es_index(stack):
    """A unique index name for this test; deleted afterwards (with any versioned twins)."""
    from elasticsearch import Elasticsearch

    name = stack.new_index_name()
    yield name
    es = Elasticsearch(stack.elastic_url)
    try:
        for idx in list(es.indices.get(index=f"{name}*", ignore_unavailable=True, allow_no_indices=True).keys()):
            es.options(ignore_status=404).indices.delete(index=idx)
    finally:
        es.close()


@pytest.fixture
def worker_env(stack, db_url, es_index):
    """Environment for a worker/API subprocess pointed at this test's database and index."""
    # Nothing inherited may steer a worker: only what this fixture sets.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OUTBOX_", "WORDLOOM_", "OTEL_", "SEARCH_OUTBOX_", "CHRONICLE_OUTBOX_",
                                "API_", "DATABASE_", "ELASTIC_"))}
    env.update(
        DATABASE_URL=db_url,
        ELASTIC_URL=stack.elastic_url,
        ELASTIC_INDEX=es_index,
        WORDLOOM_ENV="test",
        OUTBOX_METRICS_PORT="0",
        LOG_JSON="true",
        PYTHONPATH=str(REPO_ROOT / "backend"),
        PYTHONUNBUFFERED="1",
        WORDLOOM_VAR_DIR=str(_TEST_VAR),
    )
    return env


@pytest.fixture
def chronicle_runner(db_url):
    """chronicle_runner(**env) -> an opened in-process chronicle Runner on this test's database;
    every one is closed after the test."""
    from tests.support.outbox_helpers import opened_runners, settings_for

    with opened_runners() as open_runner:
        yield lambda **env: open_runner(settings_for("chronicle", db_url, **env))
