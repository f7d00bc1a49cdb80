"""The measurements.  Each returns plain dicts of numbers; harness.py puts them side by side.

Definitions (also in docs/BENCHMARKS.md):
- worker drain rate = rows / (max(processed_at) - min(processing_started_at)), by the database
  clock: from the first claim to the last ack, so interpreter start-up is not counted but every
  claim, sink call, ack and wake-up is.  Rows are committed in one transaction before the
  worker(s) start, so nothing else competes for the CPU meanwhile.
- raw bulk rate = documents / wall time of `elasticsearch.helpers.bulk(es, actions)` with the
  client's defaults (chunk_size 500), the same ids, bodies and external versions, into a fresh
  index with the same mapping on the same server.  Actions are built before the clock starts.
- plain upsert rate = rows / wall time of `INSERT INTO chronicle_entries ... SELECT FROM
  chronicle_events WHERE id = ANY(batch) ON CONFLICT (id) DO UPDATE`, one autocommit statement
  per batch of the chronicle worker's default batch size (50).
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
from elasticsearch import Elasticsearch, helpers

from ..outbox.store import OutboxStore
from ..search.index import ensure_index
from . import data
from .stack import BenchError, BenchStack, WorkerProc
from .stats import latency_summary, median, rate, ratio

log = logging.getLogger("wordloom.bench")

SEARCH_TABLE = "search_outbox_events"
CHRONICLE_TABLE = "chronicle_outbox_events"
SEARCH_BATCH = 100  # the search worker's default OUTBOX_BATCH_SIZE
CHRONICLE_BATCH = 50  # the chronicle worker's default OUTBOX_BATCH_SIZE


def _es(stack: BenchStack) -> Elasticsearch:
    return Elasticsearch(stack.elastic_url, request_timeout=120, max_retries=0)


def _fresh_index(es: Elasticsearch, name: str) -> str:
    es.options(ignore_status=404).indices.delete(index=name)
    ensure_index(es, name)
    return name


def _drop_indices(es: Elasticsearch, pattern: str) -> None:
    names = es.indices.get(index=pattern, ignore_unavailable=True, allow_no_indices=True).keys()
    for name in names:
        es.options(ignore_status=404).indices.delete(index=name)


def wait_drained(conn: psycopg.Connection, table: str, expected: int, workers: list[WorkerProc],
                 timeout: float) -> None:
    """Until `expected` rows are done; a failed row, a dead worker or the timeout is a broken run."""
    deadline = time.monotonic() + timeout
    while True:
        owed, failed = data.drain_progress(conn, table)
        if failed:
            raise BenchError(f"{failed} rows of {table} failed; see {workers[0].log_path if workers else ''}")
        if not owed:
            done = conn.execute(f"SELECT count(*) FROM {table} WHERE status = 'done' "
                                "AND owner <> 'bench-history'").fetchone()[0]
            if done < expected:
                raise BenchError(f"{table}: only {done} of {expected} rows done")
            return
        for w in workers:
            if w.proc.poll() is not None:
                raise BenchError(f"worker died ({w.proc.returncode}); log {w.log_path}:\n{w.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"{table} not drained after {timeout:.0f}s: {data.outbox_counts(conn, table)}")
        time.sleep(0.25)


def check_index(es: Elasticsearch, index: str, expected: int) -> None:
    es.indices.refresh(index=index)
    got = es.count(index=index)["count"]
    if got != expected:
        raise BenchError(f"index {index} holds {got} documents, expected {expected}")


class CpuMeter:
    """CPU seconds of each party between construction and per_item_ms(): the embedded servers,
    the given worker processes and this harness process (the plain client's side).  On a
    2-core machine where every party is busy, throughput is bounded by CPU per item; this is
    the evidence for where the time goes."""

    def __init__(self, stack: BenchStack, workers: list[WorkerProc]):
        self.stack, self.workers = stack, workers
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        snap = dict(self.stack.server_cpu())
        snap["client"] = time.process_time()
        if self.workers:
            snap["worker"] = sum(w.cpu() for w in self.workers)
        return snap

    def per_item_ms(self, items: int) -> dict[str, float]:
        end = self._now()
        out = {k: (end[k] - self.start.get(k, 0.0)) * 1000 / max(items, 1) for k in end}
        if "worker" in out:
            out["client"] = 0.0  # the harness only polls while a worker drains
        out["total"] = sum(out.values())
        return out


def median_cpu(runs: list[dict]) -> dict[str, float]:
    keys = sorted({k for r in runs for k in r})
    return {k: median(r.get(k, math.nan) for r in runs) for k in keys}


# ------------------------------------------------------------------------------ 1. throughput
def search_worker_drain(stack: BenchStack, db_url: str, index: str, n: int, name: str, *, workers: int = 1,
                        timeout: float = 1800, sample_rss: bool = False, **worker_env) -> dict:
    """Commit n pending events, start `workers` search workers, wait until all are done."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SEARCH_TABLE}")
        es = _es(stack)
        try:
            es.options(ignore_status=404).indices.delete(index=index)
        finally:
            es.close()
        # Workers first, idle and connected; then every row in one commit (one NOTIFY wakes them):
        # the CPU they use from here on is the drain's, not the interpreter start-up's.
        procs = [stack.start_worker("search", db_url, index, f"{name}-w{i}", **worker_env) for i in range(workers)]
        for p in procs:
            p.wait_ready()
        time.sleep(0.3)
        cpu0 = CpuMeter(stack, procs)
        added = data.add_search_pending(conn, n)
        rss = RssSampler(procs[0], db_url, SEARCH_TABLE, added) if sample_rss else None
        try:
            if rss:
                rss.start()
            wait_drained(conn, SEARCH_TABLE, added, procs, timeout)
            cpu = cpu0.per_item_ms(added)
        finally:
            if rss:
                rss.stop()
            for p in procs:
                code = p.stop()
                if code not in (0, None):
                    raise BenchError(f"worker exited with {code} after SIGTERM; log {p.log_path}")
        seconds, done = data.drain_window(conn, SEARCH_TABLE)
    es = _es(stack)
    try:
        check_index(es, index, added)
        es.options(ignore_status=404).indices.delete(index=index)
    finally:
        es.close()
    out = {"events": done, "seconds": seconds, "events_per_s": rate(done, seconds), "cpu_ms_per_event": cpu}
    if rss:
        out.update(rss.summary())
    return out


def raw_bulk(stack: BenchStack, actions: list[dict], index: str, chunk_size: int = 500) -> dict:
    es = _es(stack)
    try:
        _fresh_index(es, index)
        for a in actions:
            a["_index"] = index
        cpu0 = CpuMeter(stack, [])
        started = time.perf_counter()
        ok, errors = helpers.bulk(es, actions, chunk_size=chunk_size, raise_on_error=False, stats_only=True)
        seconds = time.perf_counter() - started
        cpu = cpu0.per_item_ms(len(actions))
        if errors:
            raise BenchError(f"raw bulk: {errors} documents rejected")
        check_index(es, index, len(actions))
        es.options(ignore_status=404).indices.delete(index=index)
    finally:
        es.close()
    return {"docs": ok, "seconds": seconds, "docs_per_s": rate(ok, seconds), "cpu_ms_per_doc": cpu}


def search_throughput(stack: BenchStack, n: int, doc_bytes: int, repeat: int, tag: str, **worker_env) -> dict:
    """Search worker vs raw helpers.bulk, interleaved run by run (noise hits both alike)."""
    db_url = stack.new_database(f"tp{tag}")
    index = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            data.seed_search_index(conn, n, doc_bytes)
            actions = data.load_documents(conn, index)
        # The same raw bulk in requests of the worker's batch size: what the server itself charges
        # per request, which the worker cannot avoid without a bigger batch (a documented knob).
        batch = int(worker_env.get("OUTBOX_BATCH_SIZE", SEARCH_BATCH))
        worker_runs, raw_runs, raw_batch_runs = [], [], []
        for r in range(repeat):
            raw_runs.append(raw_bulk(stack, actions, f"{index}-raw"))
            raw_batch_runs.append(raw_bulk(stack, actions, f"{index}-raw{batch}", chunk_size=batch))
            worker_runs.append(search_worker_drain(stack, db_url, index, n, f"search-{tag}-{r}", **worker_env))
            log.info("search throughput", extra={"tag": tag, "run": r, "worker": worker_runs[-1]["events_per_s"],
                                                  "raw": raw_runs[-1]["docs_per_s"]})
        w = median(x["events_per_s"] for x in worker_runs)
        b = median(x["docs_per_s"] for x in raw_runs)
        bb = median(x["docs_per_s"] for x in raw_batch_runs)
        return {"events": n, "doc_bytes": doc_bytes, "worker_events_per_s": w, "raw_bulk_docs_per_s": b,
                "ratio": ratio(w, b), "worker_runs": [x["events_per_s"] for x in worker_runs],
                "raw_runs": [x["docs_per_s"] for x in raw_runs],
                "batch_size": batch, "raw_bulk_at_batch_docs_per_s": bb, "ratio_at_batch": ratio(w, bb),
                "raw_at_batch_runs": [x["docs_per_s"] for x in raw_batch_runs],
                "worker_cpu_ms_per_event": median_cpu([x["cpu_ms_per_event"] for x in worker_runs]),
                "raw_cpu_ms_per_doc": median_cpu([x["cpu_ms_per_doc"] for x in raw_runs])}
    finally:
        stack.drop_database(db_url)


def chronicle_drain(stack: BenchStack, db_url: str, n: int, name: str, timeout: float = 1800, **worker_env) -> dict:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {CHRONICLE_TABLE}, chronicle_entries")
        proc = stack.start_worker("chronicle", db_url, "unused", name, **worker_env)
        proc.wait_ready()
        time.sleep(0.3)
        cpu0 = CpuMeter(stack, [proc])
        added = data.add_chronicle_pending(conn)
        try:
            wait_drained(conn, CHRONICLE_TABLE, added, [proc], timeout)
            cpu = cpu0.per_item_ms(added)
        finally:
            proc.stop()
        seconds, done = data.drain_window(conn, CHRONICLE_TABLE)
        entries = conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0]
        if entries != n:
            raise BenchError(f"chronicle_entries holds {entries} rows, expected {n}")
    return {"events": done, "seconds": seconds, "events_per_s": rate(done, seconds), "cpu_ms_per_event": cpu}


PLAIN_UPSERT = """
INSERT INTO chronicle_entries AS ce (id, event_type, book_id, block_id, actor_id, occurred_at, created_at,
                                     payload, summary, projection_version, updated_at)
SELECT e.id, e.event_type, e.book_id, e.block_id, e.actor_id, e.occurred_at, e.created_at, e.payload,
       e.event_type || ' (book=' || e.book_id::text || coalesce(', block=' || e.block_id::text, '') || ')', 1, now()
FROM chronicle_events e WHERE e.id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, summary = EXCLUDED.summary, updated_at = now()
"""


def plain_upsert(stack: BenchStack, db_url: str, batch: int = CHRONICLE_BATCH) -> dict:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE chronicle_entries")
        ids = [r[0] for r in conn.execute("SELECT id FROM chronicle_events ORDER BY occurred_at")]
        cpu0 = CpuMeter(stack, [])
        started = time.perf_counter()
        for i in range(0, len(ids), batch):
            conn.execute(PLAIN_UPSERT, {"ids": ids[i:i + batch]})
        seconds = time.perf_counter() - started
        cpu = cpu0.per_item_ms(len(ids))
        got = conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0]
        if got != len(ids):
            raise BenchError(f"plain upsert wrote {got} of {len(ids)} rows")
    return {"rows": len(ids), "seconds": seconds, "rows_per_s": rate(len(ids), seconds), "cpu_ms_per_row": cpu}


def in_claim_statement_only(stack: BenchStack, db_url: str, batch: int = CHRONICLE_BATCH) -> dict:
    """The chronicle worker's one statement (outbox_chronicle_deliver_in_claim: claim, project,
    settle) in a loop from the harness, with nothing else: no spans, metrics, suspects check or
    wake-up.  The ceiling of any worker that keeps the outbox's row life (each row written to
    done), against which the plain upsert (no outbox at all) is compared."""
    from ..db.queries import query

    sql = query("outbox_chronicle_deliver_in_claim")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {CHRONICLE_TABLE}, chronicle_entries")
        added = data.add_chronicle_pending(conn)
        conn.execute("SET synchronous_commit = off")  # as the worker's batch connections
        cpu0 = CpuMeter(stack, [])
        started = time.perf_counter()
        done = 0
        while True:
            rows = conn.execute(sql, {"owner": "bench-statement-only", "limit": batch, "projection_version": 1},
                                prepare=False).fetchall()
            if not rows:
                break
            done += len(rows)
        seconds = time.perf_counter() - started
        cpu = cpu0.per_item_ms(done)
        if done != added:
            raise BenchError(f"statement-only run settled {done} of {added} rows")
    return {"rows": done, "seconds": seconds, "rows_per_s": rate(done, seconds), "cpu_ms_per_row": cpu}


def chronicle_throughput(stack: BenchStack, n: int, repeat: int) -> dict:
    db_url = stack.new_database("chron")
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            data.seed_chronicle_events(conn, n)
        worker_runs, plain_runs, floor_runs = [], [], []
        for r in range(repeat):
            plain_runs.append(plain_upsert(stack, db_url))
            floor_runs.append(in_claim_statement_only(stack, db_url))
            worker_runs.append(chronicle_drain(stack, db_url, n, f"chronicle-{r}"))
        w = median(x["events_per_s"] for x in worker_runs)
        p = median(x["rows_per_s"] for x in plain_runs)
        f = median(x["rows_per_s"] for x in floor_runs)
        return {"events": n, "worker_events_per_s": w, "plain_upsert_rows_per_s": p, "ratio": ratio(w, p),
                "statement_only_rows_per_s": f, "statement_only_ratio": ratio(f, p),
                "statement_only_runs": [x["rows_per_s"] for x in floor_runs],
                "statement_only_cpu_ms_per_row": median_cpu([x["cpu_ms_per_row"] for x in floor_runs]),
                "batch_size": CHRONICLE_BATCH, "worker_runs": [x["events_per_s"] for x in worker_runs],
                "plain_runs": [x["rows_per_s"] for x in plain_runs],
                "worker_cpu_ms_per_event": median_cpu([x["cpu_ms_per_event"] for x in worker_runs]),
                "plain_cpu_ms_per_row": median_cpu([x["cpu_ms_per_row"] for x in plain_runs])}
    finally:
        stack.drop_database(db_url)


# ------------------------------------------------------------------------------ 3. growth
RSS_COUNT_EVERY_S = 3.0  # for drains of RSS_COUNT_SPARSE_FROM rows or more; smaller ones count every sample
RSS_COUNT_SPARSE_FROM = 200_000


class RssSampler:
    """Samples a worker's VmRSS twice a second with the rows done so far.  Growth = the highest
    RSS after warm-up (5% of the rows done) minus the RSS at warm-up."""

    def __init__(self, proc: WorkerProc, db_url: str, table: str, total: int):
        self.proc, self.table, self.total = proc, table, total
        self.url = db_url
        self.samples: list[tuple[float, int, int]] = []  # (seconds, done rows, rss kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")
        self.hwm_kb = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        started = time.monotonic()
        done, counted_at = 0, -math.inf
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rss, hwm = self.proc.rss_kb()
                if rss:
                    self.hwm_kb = max(self.hwm_kb, hwm)
                    # Done ~ total - clean pending, on the partial index; its count costs ~0.1 ms per
                    # thousand pending rows, so it is taken every few seconds, RSS twice a second.
                    every = RSS_COUNT_EVERY_S if self.total >= RSS_COUNT_SPARSE_FROM else 0.0
                    if time.monotonic() - counted_at >= every:
                        done, counted_at = self.total - data.clean_pending(conn, self.table), time.monotonic()
                    self.samples.append((time.monotonic() - started, done, rss))
                self._stop.wait(0.5)

    def summary(self) -> dict:
        warm = [s for s in self.samples if s[1] >= 0.05 * self.total]
        if not warm:
            return {"rss_baseline_mb": math.nan, "rss_peak_mb": math.nan, "rss_growth_mb": math.nan,
                    "rss_hwm_mb": self.hwm_kb / 1024, "rss_samples": self.samples}
        base = warm[0][2]
        peak = max(s[2] for s in warm)
        return {"rss_baseline_mb": base / 1024, "rss_peak_mb": peak / 1024, "rss_growth_mb": (peak - base) / 1024,
                "rss_hwm_mb": self.hwm_kb / 1024, "rss_samples": self.samples}


def claim_ack_rate(db_url: str, rows: int, batch: int = 100) -> float:
    """Rows/s of the store's claim_batch + ack_done alone (no sink): the queue's own cost."""
    store = OutboxStore("search")
    owner = f"bench-claim-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version)
            SELECT gen_random_uuid(), 'block', gen_random_uuid(), 'upsert', 1 FROM generate_series(1, %(n)s)""",
                     {"n": rows})
        done = 0
        started = time.perf_counter()
        while True:
            events = store.claim_batch(conn, owner, batch, 30)
            if not events:
                break
            with conn.transaction():
                acked = store.ack_done(conn, owner, [e.id for e in events])
            if len(acked) != len(events):
                raise BenchError(f"claim+ack: acked {len(acked)} of {len(events)} claimed rows")
            done += len(acked)
        seconds = time.perf_counter() - started
        if done != rows:
            raise BenchError(f"claim+ack: {done} of {rows} rows done")
        # The measured rows leave; only the history stays.
        conn.execute("DELETE FROM search_outbox_events WHERE owner = %s", (owner,))
    return rate(done, seconds)


def claim_growth(stack: BenchStack, rows: int, history: int, repeat: int) -> dict:
    from ..ops.prune import prune_done

    db_url = stack.new_database("claim")
    try:
        def measure() -> tuple[float, list[float]]:
            runs = [claim_ack_rate(db_url, rows) for _ in range(repeat)]
            return median(runs), runs

        claim_ack_rate(db_url, rows)  # warm-up (caches, plans), discarded: the first condition must not pay it
        empty, empty_runs = measure()
        with psycopg.connect(db_url, autocommit=True) as conn:
            started = time.perf_counter()
            data.add_done_history(conn, SEARCH_TABLE, history)
            seed_s = time.perf_counter() - started
        full, full_runs = measure()
        with psycopg.connect(db_url, autocommit=True) as conn:
            started = time.perf_counter()
            pruned = prune_done(conn, "search", 86400).deleted
            prune_s = time.perf_counter() - started
            if pruned != history:
                raise BenchError(f"prune deleted {pruned} of {history} history rows")
        after, after_runs = measure()
        return {"rows": rows, "history": history, "claim_ack_empty_per_s": empty,
                "claim_ack_history_per_s": full, "claim_ack_after_prune_per_s": after,
                "ratio_history": ratio(full, empty), "ratio_after_prune": ratio(after, empty),
                "prune_rows_per_s": rate(pruned, prune_s), "history_seed_seconds": seed_s,
                "empty_runs": empty_runs, "history_runs": full_runs, "after_prune_runs": after_runs}
    finally:
        stack.drop_database(db_url)


def rss_growth(stack: BenchStack, n: int, doc_bytes: int) -> dict:
    db_url = stack.new_database("rss")
    index = f"bench-rss-{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            data.seed_search_index(conn, n, doc_bytes)
        out = search_worker_drain(stack, db_url, index, n, "search-rss", sample_rss=True, timeout=3600)
        samples = out.pop("rss_samples")
        out["rss_curve"] = [(round(t, 1), done, round(kb / 1024, 1)) for t, done, kb in samples]
        return out
    finally:
        stack.drop_database(db_url)


def worker_scaling(stack: BenchStack, n: int, doc_bytes: int, counts: list[int], repeat: int) -> dict:
    db_url = stack.new_database("scale")
    index = f"bench-scale-{uuid.uuid4().hex[:6]}"
    out = {}
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            data.seed_search_index(conn, n, doc_bytes)
        for k in counts:
            runs = [search_worker_drain(stack, db_url, index, n, f"search-scale{k}-{r}", workers=k)["events_per_s"]
                    for r in range(repeat)]
            out[k] = {"events_per_s": median(runs), "runs": runs}
        return {"events": n, "doc_bytes": doc_bytes, "by_workers": out}
    finally:
        stack.drop_database(db_url)


# ------------------------------------------------------------------------------ 4. rebuild
def rebuild_vs_bulk(stack: BenchStack, n: int, doc_bytes: int, repeat: int) -> dict:
    """`ops rebuild-es` (wordloom.ops.rebuild_es.rebuild_es, the function the command runs: load,
    catch-up, verification, alias swap) vs helpers.bulk of the same rows."""
    from ..ops.rebuild_es import RebuildEsOptions, rebuild_es

    db_url = stack.new_database("rebuild")
    alias = f"bench-rebuild-{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            data.seed_search_index(conn, n, doc_bytes)
            actions = data.load_documents(conn, alias)
        rebuild_runs, raw_runs = [], []
        for r in range(repeat):
            raw_runs.append(raw_bulk(stack, actions, f"{alias}-raw")["docs_per_s"])
            es = _es(stack)
            try:
                _drop_indices(es, f"{alias}*")
                with psycopg.connect(db_url, autocommit=True) as conn:
                    started = time.perf_counter()
                    result = rebuild_es(conn, es, alias, RebuildEsOptions(), out=lambda _s: None)
                    seconds = time.perf_counter() - started
                if result.loaded != n or result.doc_count != n:
                    raise BenchError(f"rebuild-es loaded {result.loaded}, index holds {result.doc_count}, expected {n}")
                rebuild_runs.append(rate(n, seconds))
                _drop_indices(es, f"{alias}*")
            finally:
                es.close()
        w, b = median(rebuild_runs), median(raw_runs)
        return {"rows": n, "doc_bytes": doc_bytes, "rebuild_docs_per_s": w, "raw_bulk_docs_per_s": b,
                "ratio": ratio(w, b), "rebuild_runs": rebuild_runs, "raw_runs": raw_runs}
    finally:
        stack.drop_database(db_url)


# ------------------------------------------------------------------------------ 2. latency
@dataclass
class Write:
    block_id: uuid.UUID
    doc_id: str
    version: int
    intended: float
    committed: float = 0.0       # monotonic, when COMMIT returned to the writer
    committed_wall: float = 0.0  # the same moment on the wall clock (compared with processed_at)


def _acks_by_version(conn: psycopg.Connection) -> dict[tuple[uuid.UUID, int], float]:
    """(block id, event_version) -> processed_at (epoch seconds) of each done search outbox row:
    the worker's ack, written right after Elasticsearch answered the _bulk that carried it."""
    rows = conn.execute(f"SELECT entity_id, event_version, extract(epoch FROM processed_at)::float8"
                        f" FROM {SEARCH_TABLE} WHERE entity_type = 'block' AND status = 'done'").fetchall()
    return {(r[0], int(r[1])): r[2] for r in rows}


def _check_documents(es: Elasticsearch, index: str, writes: list[Write]) -> None:
    """Every written block is in the index at (at least) its last committed version."""
    newest: dict[str, int] = {}
    for w in writes:
        newest[w.doc_id] = max(newest.get(w.doc_id, 0), w.version)
    ids = sorted(newest)
    for start in range(0, len(ids), 1000):
        docs = es.mget(index=index, ids=ids[start:start + 1000], realtime=True,
                       source_includes=["event_version"])["docs"]
        for doc in docs:
            if not doc.get("found") or int(doc["_source"]["event_version"]) < newest[doc["_id"]]:
                raise BenchError(f"document {doc['_id']} is missing or older than its last write")


def latency_at_rates(stack: BenchStack, rates: list[int], seconds: float, blocks: int = 2000,
                     writers: int = 8) -> dict:
    """Open-loop writes through the domain write path (update_block: the same function the API's
    PATCH /blocks/{id} calls, one transaction with search_index + both outboxes + chronicle),
    one search worker subprocess with product defaults.  Ack = the processed_at the worker writes
    right after Elasticsearch answered the _bulk (no polling load on the search server during the
    run); afterwards every document is checked in the index at its last version."""
    from .. import domain

    db_url = stack.new_database("lat")
    index = f"bench-lat-{uuid.uuid4().hex[:6]}"
    books = max(1, blocks // 20)
    results = {}
    try:
        block_ids: list[uuid.UUID] = []
        with psycopg.connect(db_url) as conn:
            lib = domain.create_library(conn, "bench")
            for b in range(books):
                book = domain.create_book(conn, lib["id"], f"book {b}")
                block_ids += [blk["id"] for blk in domain.add_blocks(conn, book["id"], [f"block {b}-{i} " * 8
                                                                                       for i in range(20)])]
        # Interleave books so consecutive writes lock different books.
        block_ids = [block_ids[(i % books) * 20 + (i // books)] for i in range(len(block_ids))]
        versions = {bid: 1 for bid in block_ids}
        worker = stack.start_worker("search", db_url, index, "search-latency")
        with psycopg.connect(db_url, autocommit=True) as conn:
            wait_drained(conn, SEARCH_TABLE, len(block_ids), [worker], 600)
        es = _es(stack)
        try:
            for r in rates:
                results[r] = _open_loop(db_url, es, index, block_ids, versions, r, seconds, writers, worker)
                log.info("latency", extra={"rate": r, **{k: v for k, v in results[r].items() if not isinstance(v, list)}})
        finally:
            es.close()
            worker.stop()
        return results
    finally:
        stack.drop_database(db_url)


def _open_loop(db_url, es, index, block_ids, versions, target_rate, seconds, writers, worker) -> dict:
    from .. import domain
    from ..search.index import document_id

    jobs: queue.Queue = queue.Queue()
    writes: list[Write] = []
    errors: list[str] = []
    busy: set = set()
    busy_lock = threading.Lock()
    saturated = 0

    def writer():
        with psycopg.connect(db_url) as conn:
            while True:
                job = jobs.get()
                if job is None:
                    return
                block_id, w = job
                try:
                    domain.update_block(conn, block_id, content=f"write {w.version} at {w.intended:.6f} " * 8)
                    w.committed, w.committed_wall = time.monotonic(), time.time()
                except Exception as exc:  # a failed write is a broken run
                    errors.append(repr(exc)[:300])
                finally:
                    with busy_lock:
                        busy.discard(block_id)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
    for t in threads:
        t.start()
    total = int(target_rate * seconds)
    started = time.monotonic()
    cursor = 0
    for i in range(total):
        due = started + i / target_rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        block_id = None
        with busy_lock:  # never two writes of one block in flight: versions stay predictable
            for _ in range(len(block_ids)):
                candidate = block_ids[cursor % len(block_ids)]
                cursor += 1
                if candidate not in busy:
                    block_id = candidate
                    busy.add(block_id)
                    break
        if block_id is None:  # every block has a write queued: the writers cannot keep up
            saturated += 1
            continue
        versions[block_id] += 1
        w = Write(block_id, document_id("block", block_id), versions[block_id], due)
        writes.append(w)
        jobs.put((block_id, w))
    issued_s = time.monotonic() - started
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    committed_s = time.monotonic() - started
    if errors:
        raise BenchError(f"{len(errors)} writes failed, first: {errors[0]}")
    deadline = time.monotonic() + 60
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            acks = _acks_by_version(conn)
            missing = [w for w in writes if (w.block_id, w.version) not in acks]
            if not missing:
                break
            if worker.proc.poll() is not None:
                raise BenchError(f"search worker died during the latency run; log {worker.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(f"{len(missing)} of {len(writes)} writes were not delivered within 60 s")
            time.sleep(0.2)
    _check_documents(es, index, writes)
    lat = [(acks[(w.block_id, w.version)] - w.committed_wall) * 1000 for w in writes]
    sched = [(w.committed - w.intended) * 1000 for w in writes]
    out = {f"latency_{k}_ms": v for k, v in latency_summary(lat).items() if k != "n"}
    out.update({"writes": len(writes), "target_rate": target_rate,
                "achieved_rate": rate(len(writes), committed_s), "issue_seconds": issued_s,
                "skipped_saturated": saturated,
                "commit_delay_p99_ms": latency_summary(sched)["p99"]})
    return out
