"""Issue 5, "done when": a rebuild under concurrent API writes ends with Elasticsearch == search_index.

Unlike test_ops_rebuild_search.py / test_ops_rebuild_es.py (which simulate the writer with SQL),
everything here is the real thing:
  * writes: the FastAPI app (TestClient against this test's database) creating blocks, editing,
    deleting and restoring blocks and books, plus domain-write-path writer threads
    (tests.support.convergence.Hammer) doing random update / delete / restore;
  * delivery: a real `ops search-worker` process (LISTEN/NOTIFY, leases, bulk to the alias);
  * operations: `ops rebuild-search-index --truncate --emit-outbox`, then `ops rebuild-es` twice
    (the first converts the worker's concrete index into `<alias>_v1`/`_v2` behind the alias, the
    second is a plain build + atomic swap), each as a real subprocess, while the writes go on.
Before the rebuild, search_index has drifted from the source tables (orphan rows with documents in
Elasticsearch; stale text and missing rows, made just before it, while the writers write), so the
rebuild has real work to do.
After the writers stop and the outbox drains: Elasticsearch (through the alias) == search_index
exactly (same ids, same event_version), and search_index == what books and blocks imply.

Reproducible: WORDLOOM_CONVERGENCE_SEED=<n> pins the seed (printed with -s).
"""
from __future__ import annotations

import os
import random
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from tests.support.convergence import (
    UNICODE_WORDS, Hammer, assert_es_matches_search_index, es_versions, outbox_settled, seed_books,
)
from tests.support.ops_fixtures import actual_search_rows, expected_search_rows, run_cli
from tests.support.outbox_helpers import WorkerProcess, add_event, put_search_row, status_counts, wait_until
from wordloom.api import create_app
from wordloom.settings import ApiSettings

pytestmark = pytest.mark.integration

N_BLOCKS, N_BOOKS = 240, 6


class ApiWriter:
    """One thread writing through the HTTP API: new blocks, block edits / deletes / restores,
    book title and summary edits, and now and then a book delete / restore."""

    def __init__(self, client: TestClient, seed: int, books: list, blocks: list):
        self.client, self.books, self.blocks = client, list(books), list(blocks)
        self.rng = random.Random(f"{seed}-api")
        self.stop_event = threading.Event()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.unexpected: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> str:
        rng, c = self.rng, self.client
        roll = rng.random()
        if roll < 0.15:
            r = c.post("/api/v1/blocks", json={"book_id": str(rng.choice(self.books)),
                                                "content": f"new {rng.random():.8f} {rng.choice(UNICODE_WORDS)}"})
            if r.status_code == 201:
                self.blocks.append(r.json()["id"])
            return ("create", r.status_code)
        if roll < 0.30:
            body = ({"title": f"Title {rng.random():.6f}"} if rng.random() < 0.5
                    else {"summary": f"sum {rng.choice(UNICODE_WORDS)} {rng.random():.6f}"})
            return ("book_patch", c.patch(f"/api/v1/books/{rng.choice(self.books)}", json=body).status_code)
        if roll < 0.33:
            book = rng.choice(self.books)
            if rng.random() < 0.25:  # restore more often: the domain writers delete half the time
                return ("book_delete", c.delete(f"/api/v1/books/{book}").status_code)
            return ("book_restore", c.post(f"/api/v1/books/{book}/restore").status_code)
        block = rng.choice(self.blocks)
        if roll < 0.65:
            return ("block_patch", c.patch(f"/api/v1/blocks/{block}",
                                           json={"content": f"api {rng.random():.8f}"}).status_code)
        if roll < 0.83:
            return ("block_delete", c.delete(f"/api/v1/blocks/{block}").status_code)
        return ("block_restore", c.post(f"/api/v1/blocks/{block}/restore").status_code)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                what, status = self._one()
            except Exception as exc:  # reported by the test
                self.unexpected.append(repr(exc))
                continue
            if status in (200, 201):
                key = what
            elif status in (404, 409):  # e.g. editing a block of a deleted book
                key = "skipped"
            else:
                key = f"{what}:{status}"
                self.unexpected.append(key)
            with self.lock:
                self.counts[key] = self.counts.get(key, 0) + 1

    def start(self) -> "ApiWriter":
        self.thread.start()
        return self

    def stop(self) -> dict:
        self.stop_event.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "API writer did not stop"
        return dict(self.counts)


def _writes(hammer: Hammer, api: ApiWriter) -> int:
    """Writes that changed something so far (both writers)."""
    with hammer._lock:
        counts = [v for k, v in hammer.counts.items() if k != "skipped"]
    with api.lock:
        counts += [v for k, v in api.counts.items() if k != "skipped"]
    return sum(counts)


def _add_orphans(conn, books: list) -> list[str]:
    """Orphan search_index rows (entities that never existed) whose documents ARE in
    Elasticsearch (delivered by the worker): what a truncate must clean up.  Their doc ids."""
    library_id = conn.execute("SELECT library_id FROM books WHERE id = %s", (books[0],)).fetchone()[0]
    ghosts = []
    for i in range(8):
        ghost = uuid.uuid4()
        put_search_row(conn, "block", ghost, f"ghost {i}", 3, library_id)
        add_event(conn, "search", "block", ghost, "upsert", 3)
        ghosts.append(f"block:{ghost}")
    return ghosts


def _drift(conn, rng: random.Random, blocks: list) -> None:
    """search_index drifts from the source tables (stale text, rows gone), as it has when the
    on-call person reaches for the rebuild; done while the writers write, just before it."""
    stale = rng.sample(blocks, 25)
    conn.execute("UPDATE search_index SET text = 'stale', snippet = 'stale' WHERE entity_id = ANY(%s)", (stale,))
    missing = rng.sample([b for b in blocks if b not in stale], 15)
    conn.execute("DELETE FROM search_index WHERE entity_id = ANY(%s)", (missing,))


def test_rebuilds_under_concurrent_api_and_domain_writes_end_with_es_equal_to_search_index(
        stack, conn, db_url, es, es_index, worker_env):
    seed = int(os.environ.get("WORDLOOM_CONVERGENCE_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"\nrebuild-under-writes seed={seed}")
    rng = random.Random(seed)
    alias = es_index
    books, blocks = seed_books(conn, rng, N_BLOCKS, n_books=N_BOOKS)

    env = dict(worker_env, OUTBOX_BATCH_SIZE="20", OUTBOX_POLL_INTERVAL_SECONDS="0.05",
               OUTBOX_LEASE_SECONDS="5", OUTBOX_RECLAIM_INTERVAL_SECONDS="0.5")
    worker = WorkerProcess("search", env, OUTBOX_WORKER_ID=f"rebuild-writes-{seed}")
    settings = ApiSettings(database_url=db_url, elastic_url=stack.elastic_url, elastic_index=alias,
                           elastic_api_key=None, host="127.0.0.1", port=0, wordloom_env="test")
    started = time.monotonic()
    hammer = api = None
    try:
        worker.start()
        worker.wait_for_log("worker state", 20)
        ghosts = _add_orphans(conn, books)
        wait_until(lambda: outbox_settled(conn), 30, 0.05, message="initial drain")
        assert set(ghosts) <= set(es_versions(es, alias)), "the orphans' documents are in Elasticsearch"
        assert es.indices.exists(index=alias) and not es.indices.exists_alias(name=alias), \
            "the worker made a concrete index: the first rebuild-es converts it"

        with TestClient(create_app(settings)) as client:
            hammer = Hammer(db_url, seed, books, blocks, threads=2, pause=0.002).start()
            api = ApiWriter(client, seed, books, blocks).start()
            time.sleep(0.4)

            # (a) search_index from the source tables, while the writers write
            _drift(conn, rng, blocks)
            before = _writes(hammer, api)
            r = run_cli(env, "ops", "rebuild-search-index", "--truncate", "--emit-outbox", "--batch-size", "20",
                        extra_env={"WORDLOOM_REBUILD_BATCH_SLEEP_SECONDS": "0.03"}, timeout=60)
            during_a = _writes(hammer, api) - before
            assert r.returncode == 0, r.stderr
            print(f"rebuild-search-index: {r.stdout.strip()} (writes during it: {during_a})")
            assert "truncate=True emit_outbox=True" in r.stdout
            assert "orphans_removed=8 " in r.stdout and "outbox_deletes=8" in r.stdout, "the 8 orphan rows"
            assert during_a > 20, "the rebuild did not overlap the writes; the test would prove little"

            # (b) Elasticsearch behind the alias, twice (conversion, then a plain swap), while writing
            outputs = []
            for _ in range(2):
                before = _writes(hammer, api)
                r = run_cli(env, "ops", "rebuild-es", "--batch-size", "50", "--sample-size", "50", timeout=60)
                during_b = _writes(hammer, api) - before
                assert r.returncode == 0, r.stderr
                print(f"rebuild-es: {r.stdout.strip()} (writes during it: {during_b})")
                assert during_b > 20, "rebuild-es did not overlap the writes"
                outputs.append(r.stdout)
            assert "converted=True" in outputs[0] and f"alias {alias} -> {alias}_v2" in outputs[0]
            assert f"alias {alias} -> {alias}_v3 (previous: {alias}_v2)" in outputs[1]

            time.sleep(0.3)  # a few more writes land on the new index through the alias
            hammer_counts, api_counts = hammer.stop(), api.stop()
        print(f"writes: domain={hammer_counts} api={api_counts}")
        assert api.unexpected == [], api.unexpected[:5]
        assert api_counts.get("create", 0) > 0 and api_counts.get("book_patch", 0) > 0

        wait_until(lambda: outbox_settled(conn), 30, 0.05, message=f"drain (seed {seed})")
        assert worker.proc.poll() is None, "the worker died:\n" + "\n".join(worker.lines[-30:])
        worker.terminate()
        assert worker.wait(15) == 0
    finally:
        for w in (hammer, api):
            if w is not None:
                w.stop_event.set()
        worker.stop()
    print(f"seed={seed} settled {time.monotonic() - started:.1f}s after start")

    statuses = status_counts(conn, "search")
    assert set(statuses) == {"done"}, f"seed {seed}: outbox rows not delivered: {statuses}"
    assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v3"]

    # search_index == what the source tables imply (live books, live blocks of live books)
    actual, expected = actual_search_rows(conn), expected_search_rows(conn)
    assert actual == expected, (f"seed {seed}: search_index differs from the source tables: "
                                f"{len(actual - expected)} extra/stale {sorted(actual - expected)[:3]}, "
                                f"{len(expected - actual)} missing/stale {sorted(expected - actual)[:3]}")
    # Elasticsearch (through the alias) == search_index: same ids, same event_version
    n = assert_es_matches_search_index(conn, es, alias, f"seed {seed}")
    assert n == len(expected)
    assert not set(ghosts) & set(es_versions(es, alias)), "orphan documents survived the rebuild"
    # and every row is at its entity's newest version (so no delete ever sent outranks a live document)
    off = conn.execute("SELECT entity_type, entity_id, si.event_version, ev.version FROM search_index si"
                       " LEFT JOIN entity_versions ev USING (entity_type, entity_id)"
                       " WHERE ev.version IS DISTINCT FROM si.event_version").fetchall()
    assert off == [], f"seed {seed}: rows not at their entity's version: {off[:5]}"
    print(f"seed={seed} documents={n} events={sum(statuses.values())}")
