"""Multi-worker convergence: 4 worker processes hammer the same 200 entities (random update /
delete / restore through the domain write path, several writers) for a few seconds; at the end
Elasticsearch == search_index exactly (same ids, same event_version: no document below its row's
version, none for a deleted entity) and no row failed.

Seeds are printed (`-s` shows them) and reproducible: WORDLOOM_CONVERGENCE_SEED=<n> pins the first
one.  By default 3 seeds run; the 20-seed run is
`pytest -m slow -k convergence tests/integration` (or WORDLOOM_CONVERGENCE_SEEDS=20 without -m).
"""
from __future__ import annotations

import random
import time


from tests.support.convergence import (
    Hammer, assert_es_matches_search_index, outbox_settled, seed_books, seed_params,
)
from tests.support.outbox_helpers import WorkerProcess, status_counts, wait_until

DEFAULT_SEEDS = 3
HAMMER_SECONDS = 2.5


def pytest_generate_tests(metafunc):
    if "convergence_seed" in metafunc.fixturenames:
        metafunc.parametrize("convergence_seed", seed_params(metafunc.config, DEFAULT_SEEDS,
                                                             "WORDLOOM_CONVERGENCE_SEEDS"))


def test_convergence_4_workers_200_entities_random_update_delete_restore(convergence_seed, conn, db_url, es,
                                                                         es_index, worker_env):
    """4 worker processes, 200 blocks in 4 books, 3 writer threads doing random update / soft delete /
    restore of blocks (and now and then of a whole book) for 2.5 s, then a drain: Elasticsearch ==
    search_index (same ids, same event_version), nothing failed."""
    seed = convergence_seed
    print(f"\nconvergence seed={seed}")
    rng = random.Random(seed)
    books, blocks = seed_books(conn, rng, 200, n_books=4)
    env = dict(worker_env, OUTBOX_BATCH_SIZE=str(rng.choice([5, 10, 20])), OUTBOX_POLL_INTERVAL_SECONDS="0.05",
               OUTBOX_LEASE_SECONDS="5", OUTBOX_RECLAIM_INTERVAL_SECONDS="0.5")
    workers = [WorkerProcess("search", env, OUTBOX_WORKER_ID=f"conv-{seed}-{i}") for i in range(4)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_for_log("worker state", 20)
        started = time.monotonic()
        hammer = Hammer(db_url, seed, books, blocks, threads=3).start()
        time.sleep(HAMMER_SECONDS)
        counts = hammer.stop()
        print(f"convergence seed={seed} writes={counts}")
        wait_until(lambda: outbox_settled(conn), 30, 0.05, message=f"drain (seed {seed})")
        print(f"convergence seed={seed} drained {time.monotonic() - started:.2f}s after the first write")
        for w in workers:
            w.terminate()
        for w in workers:
            assert w.wait(15) == 0
    finally:
        for w in workers:
            w.stop()
    statuses = status_counts(conn, "search")
    assert set(statuses) == {"done"}, f"seed {seed}: {statuses}"
    owners = {r[0] for r in conn.execute("SELECT DISTINCT owner FROM search_outbox_events")}
    assert len(owners) >= 2, f"seed {seed}: only {owners} delivered; the test would prove little"
    n = assert_es_matches_search_index(conn, es, es_index, f"seed {seed}")
    print(f"convergence seed={seed} documents={n} events={sum(statuses.values())} owners={len(owners)}")
