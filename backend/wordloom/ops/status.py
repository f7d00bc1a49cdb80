"""`outbox status`: the backlog of both outboxes at a glance, as a table or as stable JSON.

The JSON shape is versioned (`schema`: wordloom.outbox_status/1) and described by
outbox_status.schema.json next to this file; scripts and alerts may rely on it.
"""
from __future__ import annotations

from datetime import datetime, timezone

import psycopg

from ..db.queries import OUTBOX_TABLES, query

SCHEMA_ID = "wordloom.outbox_status/1"
STATUSES = ("pending", "processing", "done", "failed")
# The rebuilds that feed each outbox's projection (CONTRACT §1 names).
PROJECTIONS = {
    "search": ("search_sot_to_search_index", "search_index_to_elastic"),
    "chronicle": ("chronicle_events_to_entries",),
}


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if ts else None


def outbox_status(conn: psycopg.Connection, outbox: str) -> dict:
    summary = conn.execute(query("status_outbox_summary", outbox)).fetchone()
    counts = dict(zip(STATUSES, (int(x) for x in summary[:4])))
    failed_by_reason = {r[0]: int(r[1]) for r in conn.execute(query("status_failed_by_reason", outbox))}
    leases = [{"owner": r[0], "rows": int(r[1]), "lease_until": _iso(r[2])}
              for r in conn.execute(query("status_leases", outbox))]
    rebuilds = [{
        "projection": r[0], "last_started_at": _iso(r[1]), "last_finished_at": _iso(r[2]),
        "last_duration_seconds": r[3], "last_success": r[4], "last_error": r[5],
    } for r in conn.execute(query("status_projections"), {"names": list(PROJECTIONS[outbox])})]
    return {
        "table": OUTBOX_TABLES[outbox],
        "counts": counts,
        "failed_by_reason": failed_by_reason,
        "oldest_pending_age_seconds": None if summary[4] is None else round(float(summary[4]), 3),
        "leases": leases,
        "stuck_processing": int(summary[5]),
        "last_success_at": _iso(summary[6]),
        "last_rebuilds": rebuilds,
    }


def collect_status(conn: psycopg.Connection) -> dict:
    now = conn.execute("SELECT now()").fetchone()[0]
    return {
        "schema": SCHEMA_ID,
        "generated_at": _iso(now),
        "outboxes": {name: outbox_status(conn, name) for name in OUTBOX_TABLES},
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def render_table(status: dict) -> str:
    lines = [f"Outbox status at {status['generated_at']}", ""]
    header = f"{'outbox':<10} {'pending':>8} {'processing':>10} {'done':>8} {'failed':>7} {'stuck':>6}  oldest pending  last success"
    lines += [header, "-" * len(header)]
    for name, s in status["outboxes"].items():
        c = s["counts"]
        lines.append(f"{name:<10} {c['pending']:>8} {c['processing']:>10} {c['done']:>8} {c['failed']:>7} "
                     f"{s['stuck_processing']:>6}  {_age(s['oldest_pending_age_seconds']):<14}  {s['last_success_at'] or '-'}")
    for name, s in status["outboxes"].items():
        lines.append("")
        lines.append(f"[{name}] failed by reason: "
                     + (", ".join(f"{k}={v}" for k, v in s["failed_by_reason"].items()) or "none"))
        lines.append(f"[{name}] leases held: "
                     + (", ".join(f"{l['owner']} ({l['rows']} rows, until {l['lease_until']})" for l in s["leases"]) or "none"))
        for r in s["last_rebuilds"]:
            outcome = {True: "ok", False: f"FAILED: {r['last_error']}", None: "running or never finished"}[r["last_success"]]
            lines.append(f"[{name}] last rebuild {r['projection']}: started {r['last_started_at'] or '-'}, "
                         f"finished {r['last_finished_at'] or '-'}, {outcome}")
        if not s["last_rebuilds"]:
            lines.append(f"[{name}] last rebuild: never")
    return "\n".join(lines)
