"""Search sink: transfer the *current* search_index state of each entity to Elasticsearch.

Why state transfer and not event replay: an event only says "entity X changed at version v".
Under the entity's advisory lock we read its search_index row as it is now: present -> index it at
the row's event_version, absent -> delete at the entity's highest known version; both with
`version_type=external`.  A late or duplicated event therefore writes the newest state or nothing
new (409 = already newer = ok; delete 404 = already gone = ok).  The embedded server keeps no delete
tombstones, so external versions alone would let a slow worker re-create a deleted document; the
advisory locks (held until the acks commit) make sure no two workers transfer one entity at once
(C11).

Bulk answers are classified per item by the item's own status (C05): 2xx ok, 409 ok, delete 404
ok, 429/5xx retry that item only (C07), other 4xx failed es_4xx (C06).  413 for a whole request
splits it; a single document too big on its own fails alone (C08).  Requests are chunked by
encoded bytes, not characters (C09).

Per-event mode (OUTBOX_USE_ES_BULK=0, v3's spelling): one index/delete request per entity instead
of _bulk, with the same external versions, the same per-item classification (the request's own
status is the item's status) and, from the runner, the same lease renewal.  Bulk stays the default
because it is one round trip per batch; per-event exists for servers or proxies that refuse _bulk.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import psycopg
from elasticsearch import ApiError, ConnectionError as ESConnectionError, ConnectionTimeout, Elasticsearch, TransportError
from psycopg.rows import dict_row

from ...db.queries import query
from ...redact import redact
from ...search.index import BULK_ANSWER_FIELDS, document_from_row, document_id, encode_bulk_action, ensure_index
from ..experiments import Experiments
from ..metrics import OutboxMetrics
from ..outcomes import Outcome
from ..store import OutboxEvent

log = logging.getLogger(__name__)


@dataclass
class BulkAction:
    """One Elasticsearch write for one entity; `encoded` is exactly what goes on the wire."""

    op: str  # "upsert" | "delete" (the outbox op names; bulk action index | delete)
    doc_id: str
    version: int
    encoded: bytes
    entity_key: tuple[str, uuid.UUID]
    body: dict | None = None

    @classmethod
    def build(cls, index: str, op: str, doc_id: str, version: int, entity_key, body: dict | None = None) -> "BulkAction":
        return cls(op, doc_id, int(version), encode_bulk_action(index, op, doc_id, version, body), entity_key, body)


def chunk_by_bytes(actions: Sequence[BulkAction], max_bytes: int) -> list[list[BulkAction]]:
    """Consecutive chunks whose encoded size stays within max_bytes (a lone oversize action gets
    its own chunk; the server's 413 then fails it alone)."""
    chunks: list[list[BulkAction]] = []
    current: list[BulkAction] = []
    size = 0
    for action in actions:
        n = len(action.encoded)
        if current and size + n > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(action)
        size += n
    if current:
        chunks.append(current)
    return chunks


def classify_item(op: str, status: int) -> tuple[str | None, str | None]:
    """(failure reason, noop reason) for one bulk item; both None means plainly ok."""
    if 200 <= status < 300:
        return None, None
    if status == 409:
        return None, "es_409"  # the document is already at this or a newer version
    if status == 404 and op == "delete":
        return None, "es_404"  # already gone
    if status == 429:
        return "es_429", None
    if 500 <= status < 600:
        return "es_5xx", None
    if 400 <= status < 500:
        return "es_4xx", None
    return "es_other", None


def request_failure_reason(exc: BaseException) -> str:
    """Reason for a _bulk request that got no per-item answer at all."""
    if isinstance(exc, ConnectionTimeout):
        return "es_timeout"
    if isinstance(exc, ESConnectionError):
        return "es_connect"
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        if status == 429:
            return "es_429"
        if 500 <= status < 600:
            return "es_5xx"
        if 400 <= status < 500:
            return "es_4xx"
        return "es_other"
    if isinstance(exc, TransportError):
        return "es_request_error"
    return "es_unknown"


def _item_error(item: dict) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        return f"{item.get('status')} {error.get('type', '')}: {error.get('reason', '')}"[:2000]
    return f"{item.get('status')} {error or ''}".strip()[:2000]


@dataclass
class PreparedBatch:
    """What prepare() read and built under the entity locks, for complete() to send."""

    outcomes: list[Outcome] = field(default_factory=list)  # rows settled without Elasticsearch
    by_entity: dict[tuple[str, uuid.UUID], list[OutboxEvent]] = field(default_factory=dict)
    actions: list[BulkAction] = field(default_factory=list)


class ElasticSink:
    projection = "search"

    def __init__(self, es: Elasticsearch, index: str, *, metrics: OutboxMetrics, bulk_max_bytes: int,
                 experiments: Experiments | None = None,
                 after_state_read: Callable[[list[OutboxEvent]], None] | None = None,
                 use_bulk: bool = True):
        self.es = es
        self.index = index
        self.metrics = metrics
        self.bulk_max_bytes = bulk_max_bytes
        self.use_bulk = use_bulk
        self.experiments = experiments or Experiments()
        # Seam for tests and drills: runs after the current rows were read under the entity locks
        # and before Elasticsearch is written (the window a concurrent worker would race into).
        self.after_state_read = after_state_read
        self._index_ready = False

    # -- the batch ------------------------------------------------------------------------------
    # Two halves, so the runner can pipeline: prepare() is the database part (entity locks, current
    # state, the encoded actions) and runs while the previous batch is still at Elasticsearch;
    # complete() sends the actions and classifies the answers.  Both run in the batch's transaction,
    # whose locks are held until the acks commit.
    def prepare(self, conn: psycopg.Connection, events: list[OutboxEvent]) -> PreparedBatch:
        prepared = PreparedBatch()
        for event in events:
            if event.op not in ("upsert", "delete"):
                prepared.outcomes.append(Outcome.failure(event.id, "unknown_op", f"unknown op {event.op!r}"))
                continue
            prepared.by_entity.setdefault(event.entity_key, []).append(event)
        if not prepared.by_entity:
            return prepared
        keys = sorted(prepared.by_entity, key=lambda k: (k[0], str(k[1])))
        params = {"entity_types": [k[0] for k in keys], "entity_ids": [k[1] for k in keys]}
        conn.execute(query("outbox_search_lock_entities"), params)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query("outbox_search_current_state"), params)
            states = {(r["entity_type"], r["entity_id"]): r for r in cur.fetchall()}
        if self.after_state_read:
            self.after_state_read(events)
        prepared.actions = [self._action_for(key, states[key], prepared.by_entity[key]) for key in keys]
        return prepared

    def complete(self, conn: psycopg.Connection, events: list[OutboxEvent], prepared: PreparedBatch) -> list[Outcome]:
        outcomes = list(prepared.outcomes)
        if not prepared.actions:
            return outcomes
        answers = self._deliver(prepared.actions)
        counts: Counter = Counter()
        for action in prepared.actions:
            item = answers[action.entity_key]
            if item.get("request_reason"):
                failure, noop = item["request_reason"], None
            else:
                failure, noop = classify_item(action.op, int(item.get("status") or 0))
            counts[(action.op, failure, noop)] += 1
            for event in prepared.by_entity[action.entity_key]:
                if failure:
                    outcomes.append(Outcome.failure(event.id, failure, _item_error(item)))
                else:
                    outcomes.append(Outcome.done(event.id, noop_reason=noop))
        for (op, failure, noop), n in counts.items():
            self._count_items(op, failure, noop, n)
        return outcomes

    def process(self, conn: psycopg.Connection, events: list[OutboxEvent]) -> list[Outcome]:
        return self.complete(conn, events, self.prepare(conn, events))

    def _action_for(self, key, state: dict, events: list[OutboxEvent]) -> BulkAction:
        doc_id = document_id(*key)
        if state["present"]:
            body = self.experiments.mutate_document(key[1], document_from_row(state))
            return BulkAction.build(self.index, "upsert", doc_id, state["event_version"], key, body)
        # Deleted: the delete must outrank every version the document ever had.
        version = max([e.event_version for e in events] + [state["known_version"] or 0])
        return BulkAction.build(self.index, "delete", doc_id, version, key)

    # -- Elasticsearch ------------------------------------------------------------------------------
    def _deliver(self, actions: list[BulkAction]) -> dict[tuple, dict]:
        """One answer item (with `status`) per action, whatever happened to the requests."""
        answers: dict[tuple, dict] = {}
        if not self._index_ready:
            try:
                ensure_index(self.es, self.index)
                self._index_ready = True
            except Exception as exc:  # the _bulk below will meet (and classify) the same problem
                log.warning("could not ensure index", extra={"index": self.index, "error": str(exc)[:300]})
        if not self.use_bulk:
            for position, action in enumerate(actions):
                synthetic = self.experiments.synthetic_item(position, action.op)
                answers[action.entity_key] = synthetic if synthetic is not None else self._send_one(action)
            return answers
        for chunk in chunk_by_bytes(actions, self.bulk_max_bytes):
            self._send(chunk, answers)
        return answers

    def _send_one(self, action: BulkAction) -> dict:
        """Per-event mode: one index/delete request; its answer shaped like a _bulk item."""
        try:
            if action.op == "upsert":
                resp = self.es.index(index=self.index, id=action.doc_id, document=action.body,
                                     version=action.version, version_type="external")
            else:
                resp = self.es.delete(index=self.index, id=action.doc_id, version=action.version,
                                      version_type="external")
            return {"status": resp.meta.status}
        except ApiError as exc:
            status = exc.status_code or 0
            if status in (404, 409) or (400 <= status < 600):
                # The request's own status is the item's status (409 stale, 404 gone, 429 busy...).
                return {"status": status, "error": {"type": str(exc.message)[:200], "reason": redact(exc)[:500]}}
            reason = request_failure_reason(exc)
            return {"status": status, "error": {"type": reason, "reason": redact(exc)[:500]}, "request_reason": reason}
        except Exception as exc:
            reason = request_failure_reason(exc)
            log.warning("document request failed", extra={"reason": reason, "error": str(exc)[:300]})
            return {"status": 0, "error": {"type": reason, "reason": redact(exc)[:500]}, "request_reason": reason}

    def _send(self, chunk: list[BulkAction], answers: dict) -> None:
        to_send: list[BulkAction] = []
        for position, action in enumerate(chunk):
            synthetic = self.experiments.synthetic_item(position, action.op)
            if synthetic is not None:
                answers[action.entity_key] = synthetic
            else:
                to_send.append(action)
        if not to_send:
            return
        started = time.perf_counter()
        try:
            response = self.es.bulk(operations=b"".join(a.encoded for a in to_send), filter_path=BULK_ANSWER_FIELDS)
        except Exception as exc:
            self.metrics.bulk_duration.labels(projection=self.projection).observe(time.perf_counter() - started)
            status = exc.status_code if isinstance(exc, ApiError) else None
            if status == 413 and len(to_send) > 1:
                self.metrics.bulk_requests.labels(projection=self.projection, result="split_413").inc()
                half = len(to_send) // 2
                self._send(to_send[:half], answers)
                self._send(to_send[half:], answers)
                return
            reason = request_failure_reason(exc)
            self.metrics.bulk_requests.labels(projection=self.projection, result=reason).inc()
            log.warning("bulk request failed", extra={"reason": reason, "items": len(to_send), "error": str(exc)[:300]})
            for action in to_send:
                answers[action.entity_key] = {
                    "status": status or 0, "error": {"type": reason, "reason": redact(exc)[:500]},
                    "request_reason": reason,
                }
            return
        self.metrics.bulk_duration.labels(projection=self.projection).observe(time.perf_counter() - started)
        body = response.body if hasattr(response, "body") else response
        items = body.get("items") or []
        self.metrics.bulk_requests.labels(projection=self.projection,
                                          result="errors" if body.get("errors") else "ok").inc()
        if len(items) != len(to_send):
            # An answer we cannot pair with the request: deliver nothing, retry everything.
            for action in to_send:
                answers[action.entity_key] = {"status": 0, "error": "bulk answer item count mismatch",
                                              "request_reason": "es_unknown"}
            return
        for action, item in zip(to_send, items):
            answers[action.entity_key] = next(iter(item.values()))

    def _count_items(self, op: str, failure: str | None, noop: str | None, n: int) -> None:
        if failure:
            result = "failed"
            self.metrics.bulk_item_failures.labels(projection=self.projection, op=op, failure_class=failure).inc(n)
        else:
            result = "noop" if noop else "ok"
        self.metrics.bulk_items.labels(projection=self.projection, op=op, result=result).inc(n)
