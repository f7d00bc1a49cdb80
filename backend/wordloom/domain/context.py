"""Who and what caused a write: stored on the chronicle event and on the outbox rows."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

# W3C trace-context: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True)
class WriteContext:
    traceparent: str | None = None
    tracestate: str | None = None
    source: str = "api"
    provenance: str = "api"
    actor_kind: str = "user"
    actor_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None

    @classmethod
    def from_headers(cls, traceparent: str | None, tracestate: str | None, **kwargs) -> "WriteContext":
        """Keep a well-formed W3C traceparent (the worker continues that trace); drop junk so a
        malformed header can never fail a write or poison a worker's span."""
        tp = (traceparent or "").strip().lower()
        tp = tp if _TRACEPARENT.match(tp) else None
        ts = (tracestate or "").strip() or None
        return cls(traceparent=tp, tracestate=ts if tp else None, **kwargs)


DEFAULT_CONTEXT = WriteContext()
