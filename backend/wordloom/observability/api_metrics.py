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

# Created at 0 when the API starts, so `rate(outbox_produced_total[5m])` answers 0, not "no data",
# before the first write.  Other (event_type, entity_type) pairs appear with their first write.
PRIMED = (
    ("book_created", "book"), ("book_created", "chronicle_event"),
    ("block_created", "block"), ("block_created", "chronicle_event"),
    ("book_updated", "book"), ("block_updated", "block"),
    ("book_soft_deleted", "book"), ("block_soft_deleted", "block"),
)
for _event_type, _entity_type in PRIMED:
    OUTBOX_PRODUCED.labels(event_type=_event_type, entity_type=_entity_type)
