"""C03: the real search worker process is SIGKILLed at a random point inside a batch -- before its
_bulk is sent, or after the server wrote it and before the worker acked (the proxy answers each
_bulk 0.15 s late to widen that window) -- again and again while writes continue.  A restarted
worker reclaims the dead workers' rows; afterwards every search_index row has its document at the
same event_version and no deleted entity has one.

Seeds are printed and reproducible (WORDLOOM_CONVERGENCE_SEED pins the first); 1 seed by default,
`pytest -m slow -k C03` runs 20 (or WORDLOOM_KILL_SEEDS=<n>).
"""
from __future__ import annotations

import random
import signal
import time


from tests.support.convergence import (
    Hammer, assert_es_matches_search_index, outbox_settled, seed_books, seed_params,
)
from tests.support.es_proxy import ESProxy, Slow, is_bulk
from tests.support.outbox_helpers import WorkerProcess, status_counts, wait_until

DEFAULT_SEEDS = 1
KILLS = 3


def pytest_generate_tests(metafunc):
    if "kill_seed" in metafunc.fixturenames:
        metafunc.parametrize("kill_seed", seed_params(metafunc.config, DEFAULT_SEEDS, "WORDLOOM_KILL_SEEDS"))


def test_C03_sigkill_inside_a_batch_then_restart_loses_nothing(kill_seed, conn, db_url, es, es_index, worker_env,
                                                              stack):
    """C03: the search worker runs behind a proxy that answers each _bulk 0.15 s after the server
    wrote it; it is SIGKILLed three times (KILLS) at a random moment after it claimed a batch (before the
    write, or after the write and before the ack), while writers keep going.  A restarted worker
    reclaims the dead worker's rows (short lease) and at the end Elasticsearch == search_index."""
    seed = kill_seed
    print(f"\nC03 seed={seed}")
    rng = random.Random(seed)
    books, blocks = seed_books(conn, rng, 60, n_books=3)
    with ESProxy(stack.elastic_url) as proxy:
        proxy.add(Slow(after=0.15), when=is_bulk)
        env = dict(worker_env, ELASTIC_URL=proxy.url, OUTBOX_BATCH_SIZE="10", OUTBOX_LEASE_SECONDS="1",
                   OUTBOX_RECLAIM_INTERVAL_SECONDS="0.2", OUTBOX_POLL_INTERVAL_SECONDS="0.05")
        t0 = time.monotonic()
        hammer = Hammer(db_url, seed, books, blocks, threads=1, pause=0.02).start()
        kills = []
        try:
            for k in range(KILLS):
                owner = f"c03-{seed}-{k}"
                held = lambda: conn.execute(  # noqa: E731
                    "SELECT count(*) FROM search_outbox_events WHERE status = 'processing' AND owner = %s",
                    (owner,)).fetchone()[0]
                with WorkerProcess("search", env, OUTBOX_WORKER_ID=owner) as worker:
                    wait_until(held, 15, 0.005, message="a batch in flight")
                    time.sleep(rng.uniform(0.0, 0.2))
                    worker.proc.send_signal(signal.SIGKILL)
                    assert worker.wait(5) == -signal.SIGKILL
                    kills.append(held())
                    print(f"C03 seed={seed} kill {k} at {time.monotonic() - t0:.2f}s")
        finally:
            counts = hammer.stop()
        print(f"C03 seed={seed} writes={counts} rows_processing_at_each_kill={kills}")
        proxy.clear()  # the restarted worker drains at full speed
        assert all(kills), "every kill must land while the worker holds a batch"
        with WorkerProcess("search", env) as worker:
            wait_until(lambda: outbox_settled(conn), 30, 0.05, message=f"drain after the kills (seed {seed})")
            print(f"C03 seed={seed} drained at {time.monotonic() - t0:.2f}s")
            worker.terminate()
            assert worker.wait(10) == 0
    statuses = status_counts(conn, "search")
    assert set(statuses) == {"done"}, f"seed {seed}: {statuses}"
    reclaimed = conn.execute("SELECT count(*) FROM search_outbox_events WHERE reclaim_count > 0").fetchone()[0]
    assert reclaimed > 0  # the dead workers' rows really were picked up again
    assert_es_matches_search_index(conn, es, es_index, f"C03 seed {seed}")
