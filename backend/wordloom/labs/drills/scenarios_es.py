"""Drills against the search sink: 429s, a write-blocked index, a partial _bulk, the server down."""
from __future__ import annotations

import time

from ...db.connect import connect
from ...devstack.ports import port_open
from ...ops.replay import ReplayFilters, replay_failed
from ...search.index import ensure_index
from ..inserters import SearchInsertSpec, insert_search_pending
from .core import (Check, Scenario, check_converged, check_deletes_applied, check_drained, check_events,
                   check_none_failed)
from .environment import elastic
from .load import SearchLoad


class Es429Inject(Scenario):
    name = "es_429_inject"
    summary = "OUTBOX_EXPERIMENT_ES_429_EVERY_N (or _RATIO/_SEED): chosen _bulk items answered 429"
    checks_summary = "429s seen and retried (only those items), nothing failed, index == search_index"

    def run(self, ctx):
        a = ctx.args
        knobs = {}
        if not a.no_fault:
            knobs = ({"OUTBOX_EXPERIMENT_ES_429_RATIO": a.ratio, "OUTBOX_EXPERIMENT_ES_429_SEED": a.seed or 7}
                     if a.ratio else {"OUTBOX_EXPERIMENT_ES_429_EVERY_N": a.every_n or 3})
        ctx.start_worker("w1", knobs=knobs)
        load = SearchLoad(ctx.target.database_url, a.seed)
        load.run_for(a.duration, a.rate)
        ctx.evidence.update(events=load.total, load=load.counts)
        ctx.wait_drained()

    def checks(self, v):
        retried = v.after("outbox_retry_scheduled_total", reason="es_429")
        items = v.after("outbox_es_bulk_item_failures_total", failure_class="es_429")
        return [
            check_events(v),
            Check("fault_observed_es_429", {"retry_scheduled_es_429": retried, "bulk_item_failures_es_429": items},
                  "> 0 items answered 429 and scheduled for retry", retried > 0 and items > 0),
            Check("only_429_items_retried", {"retry_scheduled_total": v.after("outbox_retry_scheduled_total"),
                                              "es_429": retried},
                  "every retry has reason es_429", v.after("outbox_retry_scheduled_total") == retried),
            check_none_failed(v), check_drained(v), check_converged(v), check_deletes_applied(v),
        ]


class EsWriteBlock4xx(Scenario):
    name = "es_write_block_4xx"
    summary = "index.blocks.write=true on the drill index: every write answered 403 (es_4xx), then unblock + replay"
    checks_summary = "rows failed es_4xx at once (no retries), replay brings them back, index == search_index"

    def run(self, ctx):
        a = ctx.args
        ctx.start_worker("w1")
        load = SearchLoad(ctx.target.database_url, a.seed)
        load.burst(5, "upsert")
        ctx.wait_drained()
        es = elastic(ctx.target.elastic_url)
        try:
            ensure_index(es, ctx.target.index)
            if not a.no_fault:
                es.indices.put_settings(index=ctx.target.index, settings={"index.blocks.write": True})
                ctx.note("write block on")
            load.run_for(a.duration, a.rate)
            ctx.wait_drained()
            with ctx.db() as conn:
                failed = conn.execute("SELECT count(*) FROM search_outbox_events WHERE status = 'failed' "
                                      "AND error_reason = 'es_4xx'").fetchone()[0]
            ctx.evidence["failed_during_block"] = failed
            es.indices.put_settings(index=ctx.target.index, settings={"index.blocks.write": False})
            ctx.note("write block off", failed=failed)
        finally:
            es.close()
        with connect(ctx.target.database_url, autocommit=False) as conn:
            result = replay_failed(conn, "search", ReplayFilters(error_reason="es_4xx"), 100_000, by="labs-drill",
                                   reason=f"{self.name} {ctx.run_id}", matched=failed, spread_seconds=0)
        ctx.evidence["replayed"] = len(result.replayed_ids)
        ctx.note("replayed", rows=len(result.replayed_ids))
        ctx.evidence.update(events=load.total, load=load.counts)
        ctx.wait_drained()

    def checks(self, v):
        failed = v.evidence.get("failed_during_block", 0)
        terminal = v.after("outbox_terminal_failed_total", reason="es_4xx")
        return [
            check_events(v),
            Check("fault_observed_es_4xx", {"failed_during_block": failed, "terminal_failed_es_4xx": terminal},
                  "> 0 rows failed with es_4xx while writes were blocked", failed > 0 and terminal > 0),
            Check("es_4xx_not_retried", v.after("outbox_retry_scheduled_total", reason="es_4xx"), "0", 
                  v.after("outbox_retry_scheduled_total", reason="es_4xx") == 0),
            Check("replay_took_every_failed_row", {"failed": failed, "replayed": v.evidence.get("replayed")},
                  "replayed == failed", v.evidence.get("replayed") == failed),
            check_none_failed(v), check_drained(v), check_converged(v), check_deletes_applied(v),
        ]


class EsBulkPartial(Scenario):
    name = "es_bulk_partial"
    summary = "OUTBOX_EXPERIMENT_ES_BULK_PARTIAL(+_STATUS): the first item of every _bulk answered 400, the rest sent"
    checks_summary = "exactly the rejected items failed es_4xx, every other item done and indexed (C05/C06)"

    def run(self, ctx):
        a = ctx.args
        knobs = {} if a.no_fault else {"OUTBOX_EXPERIMENT_ES_BULK_PARTIAL": 1,
                                       "OUTBOX_EXPERIMENT_ES_BULK_PARTIAL_STATUS": a.partial_status}
        ctx.start_worker("w1", knobs={**knobs, "OUTBOX_BATCH_SIZE": a.batch_size or 20})
        events = 0
        start = time.monotonic()
        with connect(ctx.target.database_url, autocommit=True) as conn:
            while time.monotonic() - start < a.duration or not events:
                burst = max(2, int(a.rate / 2))
                insert_search_pending(conn, SearchInsertSpec(count=burst, create_search_index_row=True,
                                                             search_index_text="drill bulk partial"))
                events += burst
                time.sleep(0.5)
        ctx.evidence["events"] = events
        ctx.wait_drained()

    def checks(self, v):
        s = v.state["outbox"]["search"]
        failed = s["failed_reasons"].get("es_4xx", 0)
        done = s["status"].get("done", 0)
        items_failed = v.after("outbox_es_bulk_items_total", result="failed")
        return [
            check_events(v),
            Check("fault_observed_partial_rejects", failed, "> 0 rows failed with es_4xx", failed > 0),
            Check("only_rejected_items_failed", {"failed_rows": sum(s["failed_reasons"].values()),
                                                 "failed_bulk_items": items_failed},
                  "failed rows == failed bulk items, all es_4xx",
                  items_failed == failed == sum(s["failed_reasons"].values())),
            Check("other_items_done", {"done": done, "failed": failed}, "done rows > failed rows", done > failed),
            check_drained(v), check_converged(v, exclude=set(v.state["failed_entities"])),
        ]


class EsDownConnect(Scenario):
    name = "es_down_connect"
    summary = "the search server process is stopped (SIGTERM) for --duration seconds while writes continue, then restarted"
    checks_summary = "es_connect retries seen, no row failed, deletes made during the outage applied (C01), converged"
    private = "es"

    def run(self, ctx):
        a = ctx.args
        # An outage of many seconds meets the short drill backoff many times: raise the attempt budget.
        w = ctx.start_worker("w1", knobs={"OUTBOX_MAX_ATTEMPTS": 10_000})
        load = SearchLoad(ctx.target.database_url, a.seed, mix=(0.5, 0.25, 0.25))
        load.burst(10, "upsert")
        ctx.wait_drained()
        es = ctx.private.es
        if not a.no_fault:
            es.stop()
            ctx.evidence["port_open_during_outage"] = port_open(es.host, es.port)
            ctx.note("search server stopped", port=es.port)
        load.run_for(a.duration, a.rate)
        load.burst(3, "delete")
        if not a.no_fault:
            ctx.evidence["connect_retries_during_outage"] = sum(
                v for n, l, v in w.scrape() if n == "outbox_retry_scheduled_total" and l.get("reason") == "es_connect")
            es.start()
            ctx.note("search server restarted", pid=es.proc.pid)
        ctx.evidence.update(events=load.total, load=load.counts, worker_alive=w.alive())
        ctx.wait_drained()
        ctx.evidence["worker_alive_after"] = w.alive()

    def checks(self, v):
        retries = v.after("outbox_retry_scheduled_total", reason="es_connect")
        return [
            check_events(v),
            Check("fault_observed_es_connect", {"retry_scheduled_es_connect": retries,
                                                "port_open_during_outage": v.evidence.get("port_open_during_outage")},
                  "server port closed and > 0 es_connect retries",
                  retries > 0 and v.evidence.get("port_open_during_outage") is False),
            Check("worker_survived", v.evidence.get("worker_alive_after"), "True", v.evidence.get("worker_alive_after") is True),
            check_none_failed(v), check_drained(v), check_converged(v), check_deletes_applied(v),
        ]
