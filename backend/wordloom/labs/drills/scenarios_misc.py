"""Drills about the surroundings: the trace collector away, PostgreSQL restarted, a batch delivered
twice, and the chronicle's projection_version guard."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ...devstack.ports import port_open
from .core import (Check, Scenario, check_converged, check_deletes_applied, check_drained, check_events,
                   check_none_failed)
from .load import SearchLoad, chronicle_books
from .paths import read_json
from .procs import free_port
from .state import collect

RESET_SQL = ("UPDATE {t} SET status = 'pending', processed_at = NULL, owner = NULL, lease_until = NULL, "
             "next_retry_at = NULL WHERE status = 'done' RETURNING id")


def _collector_sink() -> tuple[ThreadingHTTPServer, dict]:
    """A stand-in collector answering every OTLP POST with 200 (for the fault-off control run)."""
    seen = {"requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def _p95_latency(ctx) -> float:
    with ctx.db() as conn:
        value = conn.execute("SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - "
                             "created_at)) FROM search_outbox_events WHERE status = 'done'").fetchone()[0]
    return round(float(value or 0.0), 3)


class CollectorDown(Scenario):
    name = "collector_down"
    summary = "OTEL_EXPORTER_OTLP_ENDPOINT points at a loopback port nothing listens on (collector unreachable)"
    checks_summary = "export failures logged, spans dropped, worker at normal speed (p95 latency), exit 0, converged"

    def run(self, ctx):
        a = ctx.args
        sink = None
        if a.no_fault:
            sink, seen = _collector_sink()
            endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
        else:
            port = free_port()
            endpoint = f"http://127.0.0.1:{port}"
            ctx.evidence["endpoint_unreachable"] = not port_open("127.0.0.1", port)
        try:
            ctx.start_worker("w1", knobs={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "WORDLOOM_TRACING_ENABLED": "true",
                                          "OTEL_BSP_SCHEDULE_DELAY": 200})
            load = SearchLoad(ctx.target.database_url, a.seed)
            load.run_for(a.duration, a.rate)
            ctx.evidence.update(events=load.total, endpoint=endpoint)
            ctx.wait_drained()
            time.sleep(2.5)  # one export cycle (timeout 2 s) so the failure is in the log
            ctx.evidence["p95_latency_seconds"] = _p95_latency(ctx)
        finally:
            if sink is not None:
                ctx.evidence["collector_requests"] = seen["requests"]
                sink.shutdown()

    def checks(self, v):
        failures = [r for r in v.logs("w1") if str(r.get("logger", "")).startswith("opentelemetry.exporter")
                    and r.get("level") in ("WARNING", "ERROR")]
        exits = {w["name"]: w["exit_code"] for w in read_json(v.run_dir / "workers.json", [])}
        p95 = v.evidence.get("p95_latency_seconds")
        limit = v.recipe.get("args", {}).get("max_latency") or 2.0
        return [
            check_events(v),
            Check("fault_observed_export_failures", {"failure_log_lines": len(failures),
                                                     "endpoint_unreachable": v.evidence.get("endpoint_unreachable")},
                  "endpoint unreachable and > 0 OTLP export failures logged",
                  bool(failures) and v.evidence.get("endpoint_unreachable") is True),
            Check("normal_speed", p95, f"p95 created->processed <= {limit}s", p95 is not None and p95 <= limit),
            Check("no_crash_exit_0", exits, "worker exited 0 on SIGTERM", exits.get("w1") == 0),
            check_none_failed(v), check_drained(v), check_converged(v),
        ]


class DuplicateDelivery(Scenario):
    name = "duplicate_delivery"
    summary = "C04: every delivered row (search and chronicle) is put back to pending and delivered a second time"
    checks_summary = "second delivery processed; index documents and chronicle_entries identical to the first delivery"

    def run(self, ctx):
        a = ctx.args
        ctx.start_worker("search")
        ctx.start_worker("chronicle", "chronicle")
        books = chronicle_books(ctx.target.database_url, max(3, int(a.rate / 4)))
        load = SearchLoad(ctx.target.database_url, a.seed)
        load.run_for(a.duration, a.rate)
        ctx.wait_drained()
        first = collect(ctx.target.database_url, ctx.target.elastic_url, ctx.target.index)
        ctx.evidence.update(events=load.total + 2 * len(books), first_es=first["es"], first_chronicle=first["chronicle"])
        redelivered = {}
        if not a.no_fault:
            with ctx.db() as conn:
                for projection, table in (("search", "search_outbox_events"), ("chronicle", "chronicle_outbox_events")):
                    redelivered[projection] = len(conn.execute(RESET_SQL.format(t=table)).fetchall())
                    conn.execute(f"NOTIFY wordloom_{projection}_outbox")
            ctx.note("rows put back to pending", **redelivered)
        ctx.evidence["redelivered"] = redelivered
        ctx.wait_drained()

    def checks(self, v):
        out = v.state["outbox"]
        red = v.evidence.get("redelivered", {})
        processed = {p: v.after("outbox_processed_total", projection=p) for p in ("search", "chronicle")}
        twice = all(red.get(p, 0) > 0 and processed[p] == out[p]["rows"] + red[p] for p in processed)
        es_now = {k: (d["version"], d["digest"]) for k, d in v.state["es"].items()}
        es_first = {k: (d["version"], d["digest"]) for k, d in v.evidence.get("first_es", {}).items()}
        diff = sorted(k for k in set(es_now) | set(es_first) if es_now.get(k) != es_first.get(k))
        first_ch = v.evidence.get("first_chronicle", {})
        return [
            check_events(v),
            Check("fault_observed_delivered_twice", {"redelivered": red, "processed": processed},
                  "every row processed twice (processed == rows + redelivered)", twice),
            Check("es_identical_to_first_delivery", {"documents": len(es_now), "different": diff[:10]},
                  "same _version and source", bool(es_now) and not diff),
            Check("chronicle_identical_to_first_delivery",
                  {"entries": len(v.state["chronicle"]["versions"]), "digest_equal":
                   v.state["chronicle"]["digest"] == first_ch.get("digest")},
                  "byte-identical entries (updated_at included)",
                  bool(v.state["chronicle"]["versions"]) and v.state["chronicle"]["digest"] == first_ch.get("digest")),
            check_none_failed(v), check_none_failed(v, "chronicle"), check_drained(v, ("search", "chronicle")),
            check_converged(v),
        ]


class ProjectionVersion(Scenario):
    name = "projection_version"
    summary = "chronicle worker with CHRONICLE_PROJECTION_VERSION=2 projects; the same rows are redelivered to a v1 worker"
    checks_summary = "the v1 worker processed them, yet every entry stays at projection_version 2, unchanged"

    def run(self, ctx):
        a = ctx.args
        v2 = ctx.start_worker("v2", "chronicle", knobs={"CHRONICLE_PROJECTION_VERSION": 2})
        books = chronicle_books(ctx.target.database_url, max(3, int(a.rate / 2)))
        ctx.wait_for(lambda: ctx.scalar("SELECT count(*) FROM chronicle_outbox_events WHERE status <> 'done'") == 0,
                     a.drain_timeout, "the chronicle outbox to drain")
        ctx.scrape_after("v2")
        v2.stop()
        with ctx.db() as conn:
            ctx.evidence["after_v2"] = {str(i): n for i, n in conn.execute(
                "SELECT id, projection_version FROM chronicle_entries")}
        ctx.evidence["after_v2_digest"] = collect(ctx.target.database_url, ctx.target.elastic_url,
                                                  ctx.target.index)["chronicle"]["digest"]
        ctx.evidence["events"] = len(books)
        if not a.no_fault:
            with ctx.db() as conn:
                n = len(conn.execute(RESET_SQL.format(t="chronicle_outbox_events")).fetchall())
            ctx.evidence["redelivered_to_v1"] = n
            ctx.start_worker("v1", "chronicle", knobs={"CHRONICLE_PROJECTION_VERSION": 1})
            ctx.wait_for(lambda: ctx.scalar("SELECT count(*) FROM chronicle_outbox_events WHERE status <> 'done'") == 0,
                         a.drain_timeout, "the v1 redelivery to drain")

    def checks(self, v):
        versions = v.state["chronicle"]["versions"]
        lower = sorted(i for i, n in versions.items() if n < 2)
        v1_done = v.after("outbox_processed_total", worker="v1")
        return [
            check_events(v),
            Check("fault_observed_v1_redelivery", {"redelivered": v.evidence.get("redelivered_to_v1"), "v1_processed": v1_done},
                  "the v1 worker processed every redelivered row",
                  (v.evidence.get("redelivered_to_v1") or 0) > 0 and v1_done == v.evidence.get("redelivered_to_v1")),
            Check("lower_version_never_overwrites", {"entries": len(versions), "below_v2": lower[:10]},
                  "every entry at projection_version 2", bool(versions) and not lower),
            Check("entries_unchanged_by_v1", v.state["chronicle"]["digest"] == v.evidence.get("after_v2_digest"),
                  "digest equal to the one after v2", v.state["chronicle"]["digest"] == v.evidence.get("after_v2_digest")),
            check_none_failed(v, "chronicle"), check_drained(v, ("chronicle",)),
        ]

    def figures(self, v):
        return {"events": v.evidence.get("events", 0), "entries": len(v.state["chronicle"]["versions"]),
                "redelivered_to_v1": v.evidence.get("redelivered_to_v1", 0)}


class PostgresRestart(Scenario):
    name = "postgres_restart"
    summary = "C14: the worker's connections are terminated (pg_terminate_backend), then PostgreSQL is stopped for --duration and restarted"
    checks_summary = "worker stayed alive, reported not-ready during the outage, resumed by itself; converged"
    private = "pg"

    def run(self, ctx):
        a = ctx.args
        w = ctx.start_worker("w1", knobs={"OUTBOX_DB_PING_INTERVAL_SECONDS": 0.2, "OUTBOX_MAX_ATTEMPTS": 10_000})
        pid = w.pid
        load = SearchLoad(ctx.target.database_url, a.seed)
        load.burst(10)
        ctx.wait_drained()
        if not a.no_fault:
            lab_db = ctx.target.database_url.rsplit("/", 1)[-1]
            with ctx.db() as conn:
                killed = conn.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE datname = %s AND pid <> pg_backend_pid()", (lab_db,)).fetchone()[0]
            ctx.evidence["terminated_backends"] = killed
            ctx.note("backends terminated", count=killed)
            load.burst(5)
            ctx.wait_drained()
            pg = ctx.private.pg
            pg.stop()
            ctx.note("postgres stopped")
            seen = []
            end = time.monotonic() + max(a.duration, 1.5)
            while time.monotonic() < end:
                seen.append(w.http("/readyz")[0])
                time.sleep(0.2)
            ctx.evidence.update(readyz_during_outage=sorted(set(seen)), not_ready_seen=503 in seen,
                                alive_during_outage=w.alive())
            pg.start()
            ctx.wait_for(lambda: ctx.scalar("SELECT 1"), 30, "PostgreSQL to accept connections again")
            ctx.note("postgres restarted", pid=pg.proc.pid)
            ctx.evidence["postgres_restarted"] = True
        load.run_for(min(a.duration, 2.0), a.rate)
        ctx.evidence.update(events=load.total, load=load.counts)
        ctx.wait_drained()
        ctx.wait_for(w.ready, 15, "the worker to be ready again")
        ctx.evidence.update(same_pid_after=w.alive() and w.pid == pid)

    def checks(self, v):
        e = v.evidence
        restored = [r for r in v.logs("w1") if r.get("message") == "database connection restored"]
        return [
            check_events(v),
            Check("fault_observed_db_outage", {"terminated": e.get("terminated_backends"),
                                               "restarted": e.get("postgres_restarted")},
                  "> 0 backends terminated and the server restarted",
                  (e.get("terminated_backends") or 0) > 0 and e.get("postgres_restarted") is True),
            Check("not_ready_during_outage", e.get("readyz_during_outage"), "/readyz answered 503",
                  e.get("not_ready_seen") is True),
            Check("worker_survived", {"alive_during_outage": e.get("alive_during_outage"),
                                      "same_process_after": e.get("same_pid_after")},
                  "the same process alive throughout", bool(e.get("alive_during_outage") and e.get("same_pid_after"))),
            Check("reconnected_by_itself", len(restored), ">= 1 'database connection restored' log line", len(restored) >= 1),
            check_none_failed(v), check_drained(v), check_converged(v), check_deletes_applied(v),
        ]
