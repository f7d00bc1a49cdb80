"""The Elasticsearch index the search worker fills: mapping, document id and document body.

Document id `<entity_type>:<entity_id>` and the field names are CONTRACT.md section 2 (dashboards
and old runbooks query them).  The document is built from a search_index row only: the worker
transfers the row's current state, never an event's payload.
"""
from __future__ import annotations

import json
import logging
from typing import Mapping

from elasticsearch import ApiError, Elasticsearch

log = logging.getLogger(__name__)

INDEX_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "entity_type": {"type": "keyword"},
        "entity_id": {"type": "keyword"},
        "library_id": {"type": "keyword"},
        "text": {"type": "text"},
        "snippet": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
        "rank_score": {"type": "float"},
        "event_version": {"type": "long"},
    },
}


# The fields of a _bulk answer that our writers read (per item: status, error, _id for messages).
# Asked for with filter_path, the server writes and the client parses ~40 bytes per item instead
# of ~180 (index, version, seq_no, primary term, shards...).
BULK_ANSWER_FIELDS = "errors,items.*.status,items.*.error,items.*._id"


_json_str = json.JSONEncoder().encode  # a str -> its JSON literal (quotes, escapes)
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_bulk_action(index: str, op: str, doc_id: str, version: int, body: dict | None = None) -> bytes:
    """One `_bulk` action as it goes on the wire: op "upsert" (an index action carrying `body`)
    or "delete", with its external version.  The metadata line is built by format (names fixed,
    values JSON-escaped): a dict through json.dumps costs as much again as the document itself."""
    action = "index" if op == "upsert" else "delete"
    meta = (f'{{"{action}":{{"_index":{_json_str(index)},"_id":{_json_str(doc_id)},'
            f'"version":{int(version)},"version_type":"external"}}}}\n')
    if body is not None:
        meta += _DUMPS(body) + "\n"
    return meta.encode("utf-8")


def document_id(entity_type: str, entity_id) -> str:
    return f"{entity_type}:{entity_id}"


def document_from_row(row: Mapping) -> dict:
    """The Elasticsearch document for one search_index row (a mapping with its column names)."""
    return {
        "entity_type": row["entity_type"],
        "entity_id": str(row["entity_id"]),
        "library_id": None if row.get("library_id") is None else str(row["library_id"]),
        "text": row.get("text") or "",
        "snippet": row.get("snippet") or "",
        "rank_score": float(row.get("rank_score") or 0.0),
        "event_version": int(row["event_version"]),
    }


def ensure_index(es: Elasticsearch, name: str) -> bool:
    """Create the index with its mapping unless it exists.  True when this call created it.
    Safe when several workers start at once (the loser sees resource_already_exists)."""
    if es.indices.exists(index=name):
        return False
    try:
        es.indices.create(index=name, mappings=INDEX_MAPPING)
    except ApiError as exc:
        if exc.status_code == 400 and "already_exists" in str(exc):
            return False
        raise
    log.info("created search index", extra={"index": name})
    return True
