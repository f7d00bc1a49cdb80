"""RetryPolicy alone: pure, no database, no clock (C07/C17 spread, cap, budget, terminal reasons)."""
import random
import statistics

import pytest

from wordloom.outbox.retry import TERMINAL_REASONS, TRANSIENT_REASONS, RetryPolicy, exception_reason


def policy(**kw):
    defaults = dict(base_seconds=0.5, cap_seconds=30.0, max_attempts=10, rng=random.Random(42))
    defaults.update(kw)
    return RetryPolicy(**defaults)


@pytest.mark.parametrize("reason", sorted(TRANSIENT_REASONS))
def test_transient_reasons_retry_with_a_delay_inside_the_capped_window(reason):
    p = policy()
    for attempts in range(9):
        d = p.decide(reason, attempts)
        assert d.retry and d.reason == reason
        assert 0.0 <= d.delay_seconds <= min(30.0, 0.5 * 2 ** attempts)


@pytest.mark.parametrize("reason", sorted(TERMINAL_REASONS))
def test_terminal_reasons_fail_at_once(reason):
    d = policy().decide(reason, 0)
    assert d.terminal and d.reason == reason and d.delay_seconds == 0


def test_the_contract_reason_codes_are_all_classified():
    contract = {"es_429", "es_4xx", "es_5xx", "es_other", "es_timeout", "es_connect", "es_request_error",
                "es_unknown", "deterministic_exception", "unknown_exception", "unknown_op"}
    assert contract <= TRANSIENT_REASONS | TERMINAL_REASONS
    assert {"es_429", "es_5xx", "es_timeout", "es_connect"} <= TRANSIENT_REASONS
    assert {"es_4xx", "deterministic_exception", "unknown_op"} <= TERMINAL_REASONS


def test_budget_the_last_allowed_attempt_is_terminal():
    p = policy(max_attempts=3)
    assert p.decide("es_429", 0).retry
    assert p.decide("es_429", 1).retry
    last = p.decide("es_429", 2)
    assert last.terminal and last.reason == "es_429"


def test_cap_bounds_every_delay_even_after_many_attempts():
    p = policy(base_seconds=1.0, cap_seconds=7.5, max_attempts=10_000)
    delays = [p.decide("es_5xx", attempts).delay_seconds for attempts in range(200, 1200)]
    assert max(delays) <= 7.5
    assert max(delays) > 7.0  # the cap is reached, not only approached from far below
    assert p.ceiling(10_000) == 7.5  # no overflow on absurd attempt counts


def test_C17_a_thousand_simultaneous_failures_spread_their_retries():
    """C17: full jitter -- 1000 rows failing at the same instant with the same attempt count do not
    come back at the same moment."""
    p = policy(base_seconds=0.5, cap_seconds=30.0, rng=random.Random(7))
    delays = [p.decide("es_429", 5).delay_seconds for _ in range(1000)]  # window [0, 16]
    assert len({round(d, 3) for d in delays}) > 900
    assert 0 <= min(delays) < 1.0 and 15.0 < max(delays) <= 16.0
    # Spread over the whole window: each of 8 equal buckets gets a fair share (uniform ~125 each).
    buckets = [0] * 8
    for d in delays:
        buckets[min(int(d / 2.0), 7)] += 1
    assert min(buckets) > 80, buckets
    assert statistics.pstdev(delays) > 3.5  # uniform on [0,16] has sd ~4.6


def test_terminal_on_transient_turns_every_failure_terminal():
    p = policy(terminal_on_transient=True)
    assert p.decide("es_429", 0).terminal


def test_unknown_reason_strings_are_retried_within_the_budget():
    assert policy().decide("something_new", 0).retry


def test_exception_reasons():
    import psycopg

    assert exception_reason(ValueError("x")) == "deterministic_exception"
    assert exception_reason(KeyError("x")) == "deterministic_exception"
    assert exception_reason(psycopg.errors.InvalidTextRepresentation("x")) == "deterministic_exception"
    assert exception_reason(RuntimeError("x")) == "unknown_exception"


def test_C01_outage_reasons_never_spend_the_attempt_budget():
    """C01: es_connect / es_timeout (no answer at all: the server is away) retry at the capped pace
    for as long as the outage lasts; a server that answers 429/5xx every time is still bounded."""
    p = policy(max_attempts=3, cap_seconds=2.0)
    for reason in ("es_connect", "es_timeout"):
        for attempts in (2, 10, 1_000):
            d = p.decide(reason, attempts)
            assert d.retry and 0 <= d.delay_seconds <= 2.0
    assert p.decide("es_429", 2).terminal and p.decide("es_5xx", 2).terminal
    assert policy(terminal_on_transient=True).decide("es_connect", 0).terminal
