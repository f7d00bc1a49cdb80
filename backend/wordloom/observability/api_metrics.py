"""Metrics of the API / write path (CONTRACT.md section 3).

outbox_produced_total counts outbox rows *committed*: labels are the domain event that caused them
(book_created, block_soft_deleted, ...) and the outbox row's entity_type (book, block,
chronicle_event).  Incremented after COMMIT only, so rolled-back writes never count.
"""
from __future__ import annotations

from prometheus_client import Counter

OUTBOX_PRODUCED = Counter(
    "outbox_produced_total",
    "Outbox rows committed by the write path",
    ["event_type", "entity_type"],
)
