"""argparse types shared by the ops commands: a bad value is a usage error (exit 2), never a trace."""
from __future__ import annotations

import argparse
import re
import uuid

from ..outbox.retry import ALL_REASONS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def non_empty(value: str) -> str:
    value = value.strip()
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return x


def uuid_arg(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a UUID") from None


def duration_seconds(value: str) -> float:
    """`7d`, `36h`, `90m`, `30s`, `2w` or plain seconds."""
    m = _DURATION.match(value)
    if not m:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (examples: 7d, 36h, 90m)")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0")
    return seconds


def error_reason(value: str) -> str:
    """One of the error_reason codes the outbox engine writes (CONTRACT.md section 2): a typo
    would otherwise match 0 rows and look like "nothing to replay"."""
    value = non_empty(value)
    if value not in ALL_REASONS:
        raise argparse.ArgumentTypeError(f"unknown error_reason {value!r}; valid: {', '.join(sorted(ALL_REASONS))}")
    return value
