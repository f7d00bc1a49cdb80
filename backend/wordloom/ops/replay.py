"""Audited replay of failed outbox rows (failed -> pending), honouring --limit.

v3 printed the limit and then updated every matching row, in one instant, with no record of who
did it.  Here a replay (1) locks at most `limit` rows, oldest first, skipping rows another replay
holds, (2) moves exactly those ids, (3) spreads their next_retry_at over a window that grows with
the count, so thousands of replayed rows reach the sink as a ramp (C17), (4) writes one row to the
append-only outbox_replay_audit table, all in one transaction, then (5) wakes the workers (NOTIFY,
delivered at commit) and logs one JSON line.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field

import psycopg

from ..db.queries import query

log = logging.getLogger("wordloom.ops.replay")

CHANNELS = {"search": "wordloom_search_outbox", "chronicle": "wordloom_chronicle_outbox"}
# The ramp: replayed rows become due at about this rate, within at most MAX_SPREAD_SECONDS.
RAMP_ROWS_PER_SECOND = 100.0
MAX_SPREAD_SECONDS = 900.0
PREVIEW_IDS = 10


def spread_window(count: int) -> float:
    """Seconds over which `count` replayed rows are spread (0 for nothing to spread)."""
    return min(MAX_SPREAD_SECONDS, max(0, count) / RAMP_ROWS_PER_SECOND)


@dataclass(frozen=True)
class ReplayFilters:
    entity_type: str | None = None
    since_hours: float | None = None
    ids: tuple[uuid.UUID, ...] | None = None
    error_reason: str | None = None

    def params(self) -> dict:
        return {
            "entity_type": self.entity_type,
            "since_hours": self.since_hours,
            "ids": list(self.ids) if self.ids else None,
            "error_reason": self.error_reason,
        }

    def as_json(self) -> dict:
        data = asdict(self)
        data["ids"] = [str(i) for i in self.ids] if self.ids else None
        return data


@dataclass(frozen=True)
class ReplayPlan:
    outbox: str
    limit: int
    matched: int
    by_reason: dict[str, int]
    preview_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def will_replay(self) -> int:
        return min(self.matched, self.limit)


@dataclass(frozen=True)
class ReplayResult:
    matched: int
    replayed_ids: list[uuid.UUID]
    audit_id: int | None
    spread_seconds: float


def plan_replay(conn: psycopg.Connection, outbox: str, filters: ReplayFilters, limit: int) -> ReplayPlan:
    """What a replay would take; reads only (this is also the whole of a dry run)."""
    params = filters.params() | {"limit": min(limit, PREVIEW_IDS)}
    by_reason = {r[0]: int(r[1]) for r in conn.execute(query("replay_match_by_reason", outbox), params)}
    preview = [r[0] for r in conn.execute(query("replay_preview_failed", outbox), params)]
    conn.rollback()
    return ReplayPlan(outbox, limit, sum(by_reason.values()), by_reason, preview)


def replay_failed(conn: psycopg.Connection, outbox: str, filters: ReplayFilters, limit: int, *,
                  by: str, reason: str, matched: int, spread_seconds: float | None = None) -> ReplayResult:
    """Replay at most `limit` matching failed rows; one audit row when anything was replayed."""
    with conn.transaction():
        ids = [r[0] for r in conn.execute(query("replay_select_failed", outbox), filters.params() | {"limit": limit})]
        spread = spread_window(len(ids)) if spread_seconds is None else spread_seconds
        replayed = [r[0] for r in conn.execute(query("replay_apply", outbox), {
            "ids": ids, "by": by, "reason": reason, "spread_seconds": spread})]
        audit_id = None
        if replayed:
            audit_id = conn.execute(query("replay_audit_insert"), {
                "outbox": outbox, "by": by, "reason": reason, "ids": replayed, "matched": matched,
                "filters": json.dumps(filters.as_json() | {"limit": limit}),
            }).fetchone()[0]
            conn.execute(query("replay_notify"), {"channel": CHANNELS[outbox]})
    if replayed:
        log.info("outbox replay", extra={
            "event": "outbox_replay", "outbox": outbox, "replayed_by": by, "reason": reason,
            "matched": matched, "replayed": len(replayed), "limit": limit, "audit_id": audit_id,
            "spread_seconds": spread, "filters": json.dumps(filters.as_json()),
        })
    return ReplayResult(matched, replayed, audit_id, spread)
