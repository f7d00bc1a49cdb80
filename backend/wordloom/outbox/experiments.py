"""Fault-injection knobs for the failure drills (CONTRACT.md section 2).  All off by default.

OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS  sleep after a claim, before the sink runs (slow batch;
                                         leases keep being renewed meanwhile).
OUTBOX_EXPERIMENT_ES_429_EVERY_N         every Nth _bulk item (counted over the process) is answered
                                         429 without being sent.
OUTBOX_EXPERIMENT_ES_429_RATIO / _SEED   or each item with this probability (seeded, reproducible).
OUTBOX_EXPERIMENT_ES_429_OPS             which ops the 429s hit: upsert,delete (default both).
OUTBOX_EXPERIMENT_ES_BULK_PARTIAL        the first item of every _bulk request is answered with
  (+ _STATUS, default 400)               _STATUS without being sent; the rest go to the server.
OUTBOX_EXPERIMENT_BREAK_CLAIM            every claim fails like a lost database connection, after
  (+ _SLEEP_SECONDS)                     sleeping _SLEEP_SECONDS.
OUTBOX_FAULT_INJECT_KIND                 for the entity OUTBOX_FAULT_INJECT_ENTITY_ID (every entity
  / _ENTITY_ID                           when unset): crash (the process exits 137, C12),
                                         deterministic (ValueError), transient (RuntimeError),
                                         es_mapper_object (the document's text becomes an object, so
                                         the real server answers 400 mapper_parsing, C06).
"""
from __future__ import annotations

import logging
import os
import random
import threading
from dataclasses import dataclass

import psycopg

from ..settings import ConfigError, Env

log = logging.getLogger(__name__)
FAULT_KINDS = ("crash", "deterministic", "transient", "es_mapper_object")
CRASH_EXIT_CODE = 137


class InjectedFault(RuntimeError):
    """A transient fault raised on purpose (reason unknown_exception)."""


@dataclass
class Experiments:
    process_sleep_seconds: float = 0.0
    es_429_every_n: int = 0
    es_429_ratio: float = 0.0
    es_429_ops: frozenset = frozenset({"upsert", "delete"})
    es_429_seed: int | None = None
    bulk_partial: bool = False
    bulk_partial_status: int = 400
    break_claim: bool = False
    break_claim_sleep_seconds: float = 0.0
    fault_kind: str | None = None
    fault_entity_id: str | None = None

    def __post_init__(self):
        self._lock = threading.Lock()
        self._items_seen = 0
        self._rng = random.Random(self.es_429_seed)

    @classmethod
    def from_mapping(cls, values: dict) -> "Experiments":
        env = Env(values)
        kind = env.str("OUTBOX_FAULT_INJECT_KIND")
        if kind is not None and kind not in FAULT_KINDS:
            raise ConfigError(f"OUTBOX_FAULT_INJECT_KIND={kind!r} is not one of {', '.join(FAULT_KINDS)}")
        ops = env.str("OUTBOX_EXPERIMENT_ES_429_OPS")
        op_set = frozenset(o.strip() for o in ops.split(",") if o.strip()) if ops else frozenset({"upsert", "delete"})
        op_set = frozenset("upsert" if o == "index" else o for o in op_set)
        return cls(
            process_sleep_seconds=env.float("OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS", 0.0, minimum=0),
            es_429_every_n=env.int("OUTBOX_EXPERIMENT_ES_429_EVERY_N", 0, minimum=0),
            es_429_ratio=env.float("OUTBOX_EXPERIMENT_ES_429_RATIO", 0.0, minimum=0),
            es_429_ops=op_set,
            es_429_seed=env.int("OUTBOX_EXPERIMENT_ES_429_SEED"),
            bulk_partial=env.bool("OUTBOX_EXPERIMENT_ES_BULK_PARTIAL", False),
            bulk_partial_status=env.int("OUTBOX_EXPERIMENT_ES_BULK_PARTIAL_STATUS", 400, minimum=100),
            break_claim=env.bool("OUTBOX_EXPERIMENT_BREAK_CLAIM", False),
            break_claim_sleep_seconds=env.float("OUTBOX_EXPERIMENT_BREAK_CLAIM_SLEEP_SECONDS", 0.0, minimum=0),
            fault_kind=kind,
            fault_entity_id=env.str("OUTBOX_FAULT_INJECT_ENTITY_ID"),
        )

    @property
    def active(self) -> list[str]:
        names = []
        for name in ("process_sleep_seconds", "es_429_every_n", "es_429_ratio", "bulk_partial", "break_claim",
                     "fault_kind"):
            if getattr(self, name):
                names.append(name)
        return names

    # -- generic hooks (runner) -----------------------------------------------------------------
    def before_claim(self, wait) -> None:
        """`wait(seconds)` sleeps unless the worker is stopping."""
        if self.break_claim:
            if self.break_claim_sleep_seconds:
                wait(self.break_claim_sleep_seconds)
            raise psycopg.OperationalError("experiment OUTBOX_EXPERIMENT_BREAK_CLAIM: claim broken on purpose")

    def _targets(self, entity_id) -> bool:
        return self.fault_kind is not None and (self.fault_entity_id is None or str(entity_id) == self.fault_entity_id)

    def before_event(self, event) -> None:
        if not self._targets(event.entity_id):
            return
        if self.fault_kind == "crash":
            log.error("experiment: crashing while processing", extra={"outbox_event_id": str(event.id)})
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(CRASH_EXIT_CODE)
        if self.fault_kind == "deterministic":
            raise ValueError(f"experiment: deterministic fault for entity {event.entity_id}")
        if self.fault_kind == "transient":
            raise InjectedFault(f"experiment: transient fault for entity {event.entity_id}")

    # -- Elasticsearch hooks (search sink) ------------------------------------------------------
    def mutate_document(self, entity_id, document: dict) -> dict:
        if self.fault_kind == "es_mapper_object" and self._targets(entity_id):
            return {**document, "text": {"injected": "an object where a string is mapped"}}
        return document

    def synthetic_item(self, position: int, op: str) -> dict | None:
        """The answer to give instead of sending item `position` of a request, or None to send it."""
        if self.bulk_partial and position == 0:
            return {"status": self.bulk_partial_status,
                    "error": {"type": "experiment_bulk_partial", "reason": "OUTBOX_EXPERIMENT_ES_BULK_PARTIAL"}}
        if not (self.es_429_every_n or self.es_429_ratio) or op not in self.es_429_ops:
            return None
        with self._lock:
            self._items_seen += 1
            hit = bool(self.es_429_every_n) and self._items_seen % self.es_429_every_n == 0
            hit = hit or (self.es_429_ratio > 0 and self._rng.random() < self.es_429_ratio)
        if hit:
            return {"status": 429, "error": {"type": "es_rejected_execution_exception",
                                             "reason": "OUTBOX_EXPERIMENT_ES_429 (injected)"}}
        return None
