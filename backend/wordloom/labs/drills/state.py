"""The state a drill's checks look at: outbox rows, search_index vs the index, chronicle entries.

The same function records the final state at the end of `run` (final_state.json) and reads the
live state at `verify`; verify prefers the live state and falls back to the recording when the
drill's servers are gone (private servers, or after `clean`)."""
from __future__ import annotations

import hashlib

from ...db.connect import connect
from .environment import elastic

MAX_DOCS = 10_000


def outbox_state(conn) -> dict:
    out = {}
    for projection, table in (("search", "search_outbox_events"), ("chronicle", "chronicle_outbox_events")):
        status = dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall())
        reasons = dict(conn.execute(f"SELECT coalesce(error_reason, '?'), count(*) FROM {table} "
                                    "WHERE status = 'failed' GROUP BY 1").fetchall())
        stats = conn.execute(f"SELECT count(*) FILTER (WHERE attempts > 0), count(*) FILTER (WHERE reclaim_count > 0), "
                             f"coalesce(max(attempts), 0), count(*) FROM {table}").fetchone()
        out[projection] = {"status": status, "failed_reasons": reasons, "rows_with_attempts": stats[0],
                           "rows_reclaimed": stats[1], "max_attempts": stats[2], "rows": stats[3]}
    return out


def search_rows(conn) -> dict:
    return {f"{t}:{i}": int(v) for t, i, v in conn.execute(
        "SELECT entity_type, entity_id, event_version FROM search_index")}


def deleted_entities(conn) -> list[str]:
    """Entities whose newest search event is a delete and that have no search_index row."""
    rows = conn.execute(
        "SELECT DISTINCT ON (o.entity_type, o.entity_id) o.entity_type, o.entity_id, o.op FROM search_outbox_events o "
        "ORDER BY o.entity_type, o.entity_id, o.event_version DESC, o.created_at DESC").fetchall()
    live = search_rows(conn)
    return sorted(f"{t}:{i}" for t, i, op in rows if op == "delete" and f"{t}:{i}" not in live)


def failed_entities(conn) -> list[str]:
    return sorted({f"{t}:{i}" for t, i in conn.execute(
        "SELECT entity_type, entity_id FROM search_outbox_events WHERE status = 'failed'")})


def chronicle_state(conn) -> dict:
    rows = conn.execute("SELECT id::text, projection_version, event_type || '|' || summary || '|' || payload::text "
                        "|| '|' || updated_at::text FROM chronicle_entries ORDER BY id").fetchall()
    return {"versions": {i: int(v) for i, v, _ in rows},
            "digest": hashlib.sha256("\n".join(f"{i}|{v}|{t}" for i, v, t in rows).encode()).hexdigest(),
            "events": conn.execute("SELECT count(*) FROM chronicle_events").fetchone()[0]}


def es_documents(elastic_url: str, index: str) -> dict:
    """{doc id: {"version": _version, "event_version": ..., "digest": source hash}}; None when unreachable."""
    es = elastic(elastic_url)
    try:
        if not es.indices.exists(index=index):
            return {}
        es.indices.refresh(index=index)
        resp = es.search(index=index, size=MAX_DOCS, version=True, query={"match_all": {}})
        docs = {}
        for hit in resp["hits"]["hits"]:
            src = hit.get("_source") or {}
            docs[hit["_id"]] = {"version": hit.get("_version"), "event_version": src.get("event_version"),
                                "digest": hashlib.sha256(repr(sorted(src.items())).encode()).hexdigest()[:16]}
        return docs
    finally:
        es.close()


def collect(database_url: str, elastic_url: str, index: str) -> dict:
    with connect(database_url, autocommit=True, connect_timeout=5) as conn:
        state = {"outbox": outbox_state(conn), "search_index": search_rows(conn),
                 "deleted": deleted_entities(conn), "failed_entities": failed_entities(conn),
                 "chronicle": chronicle_state(conn)}
    state["es"] = es_documents(elastic_url, index)
    return state


def convergence(state: dict, exclude: set[str] = frozenset()) -> dict:
    """How search_index and the index disagree (CASES C03): missing / stale / orphan documents."""
    rows, docs = state["search_index"], state["es"]
    missing = [k for k in rows if k not in docs and k not in exclude]
    stale = [k for k, v in rows.items() if k in docs and k not in exclude
             and (docs[k]["event_version"] != v or docs[k]["version"] != v)]
    orphans = [k for k in docs if k not in rows]
    return {"rows": len(rows), "docs": len(docs), "missing": sorted(missing)[:20], "missing_count": len(missing),
            "stale": sorted(stale)[:20], "stale_count": len(stale), "orphans": sorted(orphans)[:20],
            "orphan_count": len(orphans)}
