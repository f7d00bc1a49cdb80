"""Search: a match query on `text` in Elasticsearch, then the hits resolved against PostgreSQL.

The index may lag the database by a worker batch, so hits whose entity is gone or soft-deleted
are dropped here rather than shown.  A missing index means nothing was indexed yet: 0 hits.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from elasticsearch import Elasticsearch, NotFoundError

from ..domain.unit import read_rows

SNIPPET_CHARS = 200


@dataclass(frozen=True)
class RawHit:
    entity_type: str
    entity_id: uuid.UUID
    snippet: str
    score: float


def _keyword_term(field: str, value: str) -> dict:
    # The engine's mapping makes these keyword fields; an index created by dynamic mapping has
    # them as text with a `.keyword` twin.  Matching either keeps filters exact on both.
    return {"bool": {"should": [{"term": {field: value}}, {"term": {f"{field}.keyword": value}}],
                     "minimum_should_match": 1}}


def build_query(q: str, entity_type: str | None, library_id: uuid.UUID | None) -> dict:
    filters = []
    if entity_type:
        filters.append(_keyword_term("entity_type", entity_type))
    if library_id:
        filters.append(_keyword_term("library_id", str(library_id)))
    return {"bool": {"must": [{"match": {"text": q}}], "filter": filters}}


def _parse_hit(hit: dict) -> RawHit | None:
    source = hit.get("_source") or {}
    entity_type = source.get("entity_type")
    entity_id = source.get("entity_id")
    if not (entity_type and entity_id) and ":" in hit.get("_id", ""):
        entity_type, entity_id = hit["_id"].split(":", 1)
    try:
        parsed_id = uuid.UUID(str(entity_id))
    except ValueError:
        return None  # not a document of ours
    fragments = (hit.get("highlight") or {}).get("text") or []
    snippet = fragments[0] if fragments else (source.get("snippet") or "")[:SNIPPET_CHARS]
    return RawHit(entity_type, parsed_id, snippet, float(hit.get("_score") or 0.0))


def search_documents(es: Elasticsearch, index: str, q: str, *, entity_type: str | None = None,
                     library_id: uuid.UUID | None = None, limit: int = 10) -> tuple[int, list[RawHit]]:
    try:
        resp = es.search(
            index=index, query=build_query(q, entity_type, library_id), size=limit, track_total_hits=True,
            highlight={"fields": {"text": {"fragment_size": SNIPPET_CHARS, "number_of_fragments": 1}},
                       "pre_tags": ["<em>"], "post_tags": ["</em>"]},
        )
    except NotFoundError:
        return 0, []
    hits = resp["hits"]
    total = hits["total"]["value"] if isinstance(hits.get("total"), dict) else int(hits.get("total") or 0)
    parsed = [h for h in (_parse_hit(raw) for raw in hits["hits"]) if h is not None]
    return total, parsed


def resolve_hits(conn: psycopg.Connection, hits: list[RawHit]) -> list[dict]:
    """Attach book_id/book_title from PostgreSQL; drop hits whose entity no longer lives."""
    if not hits:
        return []
    rows = read_rows(conn, "domain_search_hits_resolve", {
        "book_ids": [h.entity_id for h in hits if h.entity_type == "book"],
        "block_ids": [h.entity_id for h in hits if h.entity_type == "block"],
    })
    live = {(r["entity_type"], r["entity_id"]): r for r in rows}
    resolved = []
    for h in hits:
        row = live.get((h.entity_type, h.entity_id))
        if row is not None:
            resolved.append({"entity_type": h.entity_type, "entity_id": h.entity_id, "book_id": row["book_id"],
                             "book_title": row["book_title"], "snippet": h.snippet, "score": h.score})
    return resolved


def search(es: Elasticsearch, index: str, conn: psycopg.Connection, q: str, *, entity_type: str | None = None,
           library_id: uuid.UUID | None = None, limit: int = 10) -> dict:
    total, raw = search_documents(es, index, q, entity_type=entity_type, library_id=library_id, limit=limit)
    hits = resolve_hits(conn, raw)
    # Hits dropped as stale are not counted; the total elsewhere is Elasticsearch's own count.
    return {"total": max(0, total - (len(raw) - len(hits))), "hits": hits}
