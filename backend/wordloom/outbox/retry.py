"""RetryPolicy: a small pure object deciding, for one failure, "retry in N seconds" or "terminal".

Reason codes are the metric label and `error_reason` column values of CONTRACT.md section 2.
Transient reasons back off exponentially with *full jitter* (a uniform draw in [0, capped delay]):
a thousand rows failing at the same instant spread their retries instead of stampeding back
together (C17).  Terminal reasons fail at once: retrying a 400 or a bug cannot succeed.

Outage reasons (es_connect, es_timeout: the server gave no answer at all) say nothing about the
row, only that the sink is away (an upgrade, a restart).  They retry at the capped, jittered pace
but never spend the OUTBOX_MAX_ATTEMPTS budget: a delete committed while Elasticsearch is down for
ten minutes must still reach it when it is back, not end `failed` (C01).  Everything else the
server answers (429, 5xx) stays within the budget, so a document the server rejects every time
cannot loop forever.  OUTBOX_TERMINAL_ON_TRANSIENT=1 still makes every failure terminal.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

# Reasons that a later attempt can cure (the server was busy, away or slow).
TRANSIENT_REASONS = frozenset({
    "es_429", "es_5xx", "es_timeout", "es_connect",
    # Not understood, so not known to be permanent: retried, but bounded by max_attempts.
    "es_request_error", "es_other", "es_unknown", "unknown_exception",
})
# Reasons that no number of attempts can cure.
TERMINAL_REASONS = frozenset({"es_4xx", "deterministic_exception", "unknown_op", "reclaim_exhausted"})
# Transient reasons that mean "the sink is unreachable", not "this row failed": never budgeted.
OUTAGE_REASONS = frozenset({"es_connect", "es_timeout"})
ALL_REASONS = TRANSIENT_REASONS | TERMINAL_REASONS


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float
    reason: str

    @property
    def terminal(self) -> bool:
        return not self.retry


@dataclass
class RetryPolicy:
    """`decide(reason, attempts)`: attempts is how many attempts the row had *before* this one."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_attempts: int = 10
    terminal_on_transient: bool = False
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_settings(cls, settings, rng: random.Random | None = None) -> "RetryPolicy":
        return cls(base_seconds=settings.base_backoff, cap_seconds=settings.max_backoff,
                   max_attempts=settings.max_attempts, terminal_on_transient=settings.terminal_on_transient,
                   rng=rng or random.Random())

    def is_transient(self, reason: str) -> bool:
        # An unknown reason string is treated like unknown_exception: retried within the budget.
        return reason not in TERMINAL_REASONS

    def ceiling(self, attempts: int) -> float:
        """The upper bound of the jittered delay after `attempts` earlier attempts."""
        exponent = min(max(attempts, 0), 62)  # 2**62 * base is far past any cap; avoids overflow
        return min(self.cap_seconds, self.base_seconds * (2 ** exponent))

    def decide(self, reason: str, attempts: int) -> RetryDecision:
        if not self.is_transient(reason) or self.terminal_on_transient:
            return RetryDecision(False, 0.0, reason)
        if attempts + 1 >= self.max_attempts and reason not in OUTAGE_REASONS:
            return RetryDecision(False, 0.0, reason)
        return RetryDecision(True, self.rng.uniform(0.0, self.ceiling(attempts)), reason)


DETERMINISTIC_TYPES = (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError)


def exception_reason(exc: BaseException) -> str:
    """Reason for an exception raised while processing a row (not an Elasticsearch answer).

    Programming and data errors repeat identically on every attempt: deterministic_exception.
    Anything else might be a passing condition: unknown_exception (retried within the budget).
    """
    try:
        import psycopg

        if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)):
            return "deterministic_exception"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, DETERMINISTIC_TYPES):
        return "deterministic_exception"
    return "unknown_exception"
