"""Errors of the write path that callers (API, importer, labs) turn into answers."""
from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal of the write path; nothing of the failed write was committed."""


class NotFound(DomainError):
    def __init__(self, kind: str, entity_id: object):
        self.kind = kind
        self.entity_id = entity_id
        super().__init__(f"{kind} {entity_id} not found")


class Conflict(DomainError):
    """The write contradicts the current state (e.g. editing a soft-deleted book)."""
