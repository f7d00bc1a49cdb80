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


def _number(cast, noun: str, minimum, *, inclusive: bool):
    """An argparse type: `cast(value)` that must be >= minimum (or > minimum)."""
    def parse(value: str):
        try:
            n = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {noun}") from None
        if n < minimum or (not inclusive and n == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {minimum}, got {value}")
        return n

    return parse


positive_int = _number(int, "an integer", 1, inclusive=True)
non_negative_int = _number(int, "an integer", 0, inclusive=True)
positive_float = _number(float, "a number", 0, inclusive=False)


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
