"""The harness's arithmetic, kept pure so tests/unit/test_bench_stats.py can check it alone."""
from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (the same definition as numpy's default), p in [0, 100].
    NaN for an empty sequence (a measurement that produced nothing is shown as missing, never 0)."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} out of range")
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (rank - lo))


def median(values: Iterable[float]) -> float:
    return percentile([v for v in values if not math.isnan(v)], 50)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if denominator is None or numerator is None or math.isnan(denominator) or math.isnan(numerator) or denominator == 0:
        return math.nan
    return numerator / denominator


def spread(values: Sequence[float]) -> dict:
    """min / median / max of repeats, for the report (the median is the figure)."""
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"min": math.nan, "median": math.nan, "max": math.nan, "n": 0}
    return {"min": min(clean), "median": median(clean), "max": max(clean), "n": len(clean)}


def latency_summary(latencies_ms: Sequence[float]) -> dict:
    return {"p50": percentile(latencies_ms, 50), "p95": percentile(latencies_ms, 95),
            "p99": percentile(latencies_ms, 99), "max": max(latencies_ms) if latencies_ms else math.nan,
            "n": len(latencies_ms)}


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    if value is None or math.isnan(value):
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "missed"
