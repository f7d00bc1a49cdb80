"""Drills about workers: contention for claims, a SIGKILLed claim holder, a kill inside a batch,
four workers converging under random update/delete/restore."""
from __future__ import annotations

import random
import threading
import time

from ...db.connect import connect
from ...domain import (DomainError, create_block, create_book, create_library, restore_block, soft_delete_block,
                       update_block, update_book)
from .core import (Check, Scenario, check_converged, check_deletes_applied, check_drained, check_events,
                   check_none_failed)
from .load import SearchLoad

HELD_SQL = "SELECT count(*) FROM search_outbox_events WHERE status = 'processing' AND owner = %s"


def _processed_by_worker(v, projection: str = "search") -> dict:
    return {w: sum(x for n, l, x in s if n == "outbox_processed_total" and l.get("projection") == projection)
            for w, s in v.metrics.get("after", {}).items() if w != "chronicle"}


class DbClaimContention(Scenario):
    name = "db_claim_contention"
    summary = "--workers (3) search workers claim one backlog at once (FOR UPDATE SKIP LOCKED), small batches"
    checks_summary = "several workers did work; rows processed == rows (no double processing); no lost leases"
    default_workers = 3

    def run(self, ctx):
        a = ctx.args
        n = 1 if a.no_fault else (a.workers or self.default_workers)
        knobs = {"OUTBOX_BATCH_SIZE": a.batch_size or 5, "OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS": 0.02}
        workers = [ctx.start_worker(f"w{i + 1}", knobs=knobs, ready=False) for i in range(n)]
        for w in workers:
            w.wait_ready()
            w.scrape(ctx.run_dir / "metrics" / f"before-{w.name}.prom")
        load = SearchLoad(ctx.target.database_url, a.seed, mix=(1.0, 0.0, 0.0))
        load.burst(max(50, int(a.rate * a.duration / 2)), "upsert")  # one backlog every worker races for
        load.run_for(a.duration, a.rate)
        ctx.evidence.update(events=load.total, workers=n)
        ctx.wait_drained()

    def checks(self, v):
        per = _processed_by_worker(v)
        rows = v.state["outbox"]["search"]["rows"]
        busy = sorted(w for w, n in per.items() if n > 0)
        return [
            check_events(v),
            Check("contention_observed", per, ">= 2 workers processed rows", len(busy) >= 2),
            Check("no_double_processing", {"processed_total": sum(per.values()), "rows": rows},
                  "processed == rows", sum(per.values()) == rows),
            Check("no_lost_leases", v.after("outbox_owner_mismatch_skips_total"), "0",
                  v.after("outbox_owner_mismatch_skips_total") == 0),
            check_none_failed(v), check_drained(v), check_converged(v),
        ]


class StuckReclaim(Scenario):
    name = "stuck_reclaim"
    summary = "worker A claims a batch and sleeps (OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS), is SIGKILLed holding it; B reclaims"
    checks_summary = "A held rows when killed; B reclaimed them after the lease expired and delivered them; converged"

    def run(self, ctx):
        a = ctx.args
        lease = {"OUTBOX_LEASE_SECONDS": 2, "OUTBOX_BATCH_SIZE": a.batch_size or 10}
        hold = {} if a.no_fault else {"OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS": 600}
        worker_a = ctx.start_worker("a", knobs={**lease, **hold})
        load = SearchLoad(ctx.target.database_url, a.seed, mix=(1.0, 0.0, 0.0))
        load.burst(max(20, int(a.rate)), "upsert")
        owner = worker_a.env["OUTBOX_WORKER_ID"]
        if a.no_fault:
            ctx.wait_drained()
            held = ctx.scalar(HELD_SQL, (owner,))
            worker_a.scrape(ctx.run_dir / "metrics" / "after-a.prom")
            worker_a.stop()
        else:
            held = ctx.wait_for(lambda: ctx.scalar(HELD_SQL, (owner,)), 20, "worker A to hold claimed rows")
            worker_a.kill()
        ctx.evidence.update(held_at_kill=held, a_exit_code=worker_a.proc.returncode)
        ctx.note("worker A gone", held=held, exit_code=worker_a.proc.returncode)
        ctx.start_worker("b", knobs=lease)
        load.run_for(a.duration, a.rate)
        ctx.evidence["events"] = load.total
        ctx.wait_drained()

    def checks(self, v):
        held = v.evidence.get("held_at_kill", 0)
        reclaimed = v.state["outbox"]["search"]["rows_reclaimed"]
        logged = [r for r in v.logs("b") if r.get("message") == "reclaimed expired rows"]
        return [
            check_events(v),
            Check("fault_observed_killed_holding_rows", {"held": held, "exit_code": v.evidence.get("a_exit_code")},
                  "A SIGKILLed (-9) while holding > 0 rows", held > 0 and v.evidence.get("a_exit_code") == -9),
            Check("rows_reclaimed", {"rows_reclaimed": reclaimed, "reclaim_log_lines_b": len(logged)},
                  ">= held rows reclaimed, logged by B", reclaimed >= held > 0 and len(logged) > 0),
            check_none_failed(v), check_drained(v), check_converged(v),
        ]


class WorkerKillMidBatch(Scenario):
    name = "worker_kill_mid_batch"
    summary = "C03: SIGKILL the worker at a random point inside a batch (seeded), restart it with the same id"
    checks_summary = "killed with rows in flight; afterwards every row done, index == search_index, deletes gone"

    def run(self, ctx):
        a = ctx.args
        rng = random.Random(a.seed)
        knobs = {"OUTBOX_BATCH_SIZE": a.batch_size or 20, "OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS": 0.2,
                 "OUTBOX_LEASE_SECONDS": 2}
        w1 = ctx.start_worker("w1", knobs=knobs)
        knobs["OUTBOX_WORKER_ID"] = w1.env["OUTBOX_WORKER_ID"]  # the same worker, restarted
        kill_at = rng.uniform(0.2, 0.6) * a.duration
        owner = w1.env["OUTBOX_WORKER_ID"]
        state = {"killed": a.no_fault}

        def tick(elapsed):
            if state["killed"] or elapsed < kill_at:
                return
            held = ctx.scalar(HELD_SQL, (owner,))
            if held:
                w1.kill()
                state["killed"] = True
                ctx.evidence.update(in_flight_at_kill=held, kill_exit_code=w1.proc.returncode,
                                    kill_at_seconds=round(elapsed, 3))
                ctx.note("SIGKILL inside a batch", held=held)
                ctx.start_worker("w1-restarted", knobs=knobs)

        load = SearchLoad(ctx.target.database_url, a.seed)
        load.run_for(a.duration, a.rate, tick)
        if not state["killed"]:  # the load ended first: kill inside the next batch
            load.burst(20)
            ctx.wait_for(lambda: ctx.scalar(HELD_SQL, (owner,)), 20, "a batch in flight")
            tick(kill_at)
        ctx.evidence.update(events=load.total, load=load.counts)
        ctx.wait_drained()

    def checks(self, v):
        held = v.evidence.get("in_flight_at_kill", 0)
        return [
            check_events(v),
            Check("fault_observed_kill_in_batch", {"in_flight": held, "exit_code": v.evidence.get("kill_exit_code")},
                  "SIGKILL (-9) with > 0 rows in flight", held > 0 and v.evidence.get("kill_exit_code") == -9),
            check_none_failed(v), check_drained(v), check_converged(v), check_deletes_applied(v),
        ]


class MultiWorkerConvergence(Scenario):
    name = "multi_worker_convergence"
    summary = "--workers (4) search workers; writer threads do random update/delete/restore on shared blocks"
    checks_summary = "every worker helped; index == search_index at equal versions; no version regression"
    default_workers = 4

    def run(self, ctx):
        a = ctx.args
        n = a.workers or self.default_workers
        workers = [ctx.start_worker(f"w{i + 1}", knobs={"OUTBOX_BATCH_SIZE": a.batch_size or 5}, ready=False)
                   for i in range(n)]
        for w in workers:
            w.wait_ready()
            w.scrape(ctx.run_dir / "metrics" / f"before-{w.name}.prom")
        ctx.start_worker("chronicle", "chronicle")  # the domain writes chronicle events too
        with connect(ctx.target.database_url, autocommit=True) as conn:
            lib = create_library(conn, f"drill {ctx.run_id}")
            book = create_book(conn, lib["id"], "drill book", "shared by the writers")
            blocks = [create_block(conn, book["id"], f"block {i}")["id"] for i in range(20)]
        counts = {"update": 0, "delete": 0, "restore": 0, "book_update": 0, "rejected": 0}
        lock = threading.Lock()
        stop = time.monotonic() + a.duration

        def writer(seed):
            rng = random.Random(seed)
            with connect(ctx.target.database_url, autocommit=True) as conn:
                while time.monotonic() < stop:
                    op = rng.choices(["update", "delete", "restore", "book_update"], [5, 2, 2, 1])[0]
                    block = rng.choice(blocks)
                    try:
                        if op == "update":
                            update_block(conn, block, content=f"v{rng.random():.6f}")
                        elif op == "delete":
                            soft_delete_block(conn, block)
                        elif op == "restore":
                            restore_block(conn, block)
                        else:
                            update_book(conn, book["id"], summary=f"s{rng.random():.6f}")
                    except DomainError:
                        op = "rejected"
                    with lock:
                        counts[op] += 1
                    time.sleep(1.0 / max(a.rate, 1))

        threads = [threading.Thread(target=writer, args=((a.seed or 0) + i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx.evidence.update(events=sum(v for k, v in counts.items() if k != "rejected"), ops=counts, workers=n)
        ctx.wait_drained()

    def checks(self, v):
        per = _processed_by_worker(v)
        ops = v.evidence.get("ops", {})
        rows, docs = v.state["search_index"], v.state["es"]
        regressed = sorted(k for k, ver in rows.items() if k in docs and (docs[k]["version"] or 0) < ver)
        return [
            check_events(v),
            Check("random_ops_applied", ops, "updates, deletes and restores all happened",
                  all(ops.get(k, 0) > 0 for k in ("update", "delete", "restore"))),
            Check("workers_shared_the_load", per, ">= 2 workers processed rows (all scraped)",
                  len(per) == v.evidence.get("workers") and sum(n > 0 for n in per.values()) >= min(2, len(per))),
            Check("no_version_regression", regressed[:10], "no document older than its search_index row", not regressed),
            check_none_failed(v), check_drained(v, ("search", "chronicle")), check_converged(v), check_deletes_applied(v),
        ]
