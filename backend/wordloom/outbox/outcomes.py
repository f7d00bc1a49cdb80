"""What a sink says about one outbox row; the runner turns it into done / retry / failed."""
from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """`reason` None means delivered; `noop_reason` says the target already had this state
    (es_409, es_404, unchanged...).  With a `reason`, the retry policy decides retry or failed."""

    event_id: uuid.UUID
    reason: str | None = None
    error: str = ""
    noop_reason: str | None = None

    @property
    def delivered(self) -> bool:
        return self.reason is None

    @classmethod
    def done(cls, event_id, noop_reason: str | None = None) -> "Outcome":
        return cls(event_id, noop_reason=noop_reason)

    @classmethod
    def failure(cls, event_id, reason: str, error: str) -> "Outcome":
        return cls(event_id, reason=reason, error=error)
