"""Pure pieces of the ops tools: argument types, replay spread, progress output, status table, schema checker."""
from __future__ import annotations

import argparse
import io
import uuid

import pytest

from wordloom.ops.argtypes import duration_seconds, non_empty, positive_int, uuid_arg
from wordloom.ops.progress import Progress
from wordloom.ops.replay import MAX_SPREAD_SECONDS, ReplayFilters, spread_window
from wordloom.ops.schema_check import load_schema, schema_errors
from wordloom.ops.status import render_table


@pytest.mark.parametrize("text,seconds", [("7d", 7 * 86400), ("36h", 36 * 3600), ("90m", 5400), ("30s", 30),
                                          ("2w", 14 * 86400), ("45", 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "0d", "-1d", "7y"])
def test_bad_durations_are_usage_errors(bad):
    with pytest.raises(argparse.ArgumentTypeError):
        duration_seconds(bad)


def test_other_argument_types():
    assert non_empty("  alice ") == "alice"
    with pytest.raises(argparse.ArgumentTypeError):
        non_empty("   ")
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")
    some = uuid.uuid4()
    assert uuid_arg(str(some)) == some
    with pytest.raises(argparse.ArgumentTypeError):
        uuid_arg("nope")


def test_replay_spread_grows_with_the_count_and_is_capped():
    assert spread_window(0) == 0
    assert spread_window(100) < spread_window(1000) == 10.0
    assert spread_window(10_000_000) == MAX_SPREAD_SECONDS


def test_replay_filters_are_recorded_as_json():
    some = uuid.uuid4()
    filters = ReplayFilters(entity_type="book", since_hours=2.0, ids=(some,), error_reason="es_429")
    assert filters.as_json() == {"entity_type": "book", "since_hours": 2.0, "ids": [str(some)], "error_reason": "es_429"}
    assert ReplayFilters().params() == {"entity_type": None, "since_hours": None, "ids": None, "error_reason": None}


def test_progress_prints_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress("rebuild x", 10, stream=out, interval=0) as progress:
        progress.update(4)
        progress.update(6)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[progress] rebuild x: 4/10 rows")
    assert "10/10 rows" in lines[1]


def test_progress_draws_a_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    with Progress("rebuild x", 10, stream=out, interval=0) as progress:
        progress.update(10)
    assert "[progress]" not in out.getvalue() and "10/10" in out.getvalue()


def _status(**search_overrides):
    outbox = {"table": "search_outbox_events", "counts": {"pending": 1, "processing": 0, "done": 2, "failed": 3},
              "failed_by_reason": {"es_4xx": 3}, "oldest_pending_age_seconds": 3725.0, "leases": [],
              "stuck_processing": 0, "last_success_at": None, "last_rebuilds": []}
    return {"schema": "wordloom.outbox_status/1", "generated_at": "2030-01-01T00:00:00Z",
            "outboxes": {"search": {**outbox, **search_overrides},
                         "chronicle": {**outbox, "table": "chronicle_outbox_events"}}}


def test_status_table_is_readable():
    text = render_table(_status())
    assert "search" in text and "1h2m" in text and "[search] failed by reason: es_4xx=3" in text
    assert "[chronicle] leases held: none" in text


def test_schema_accepts_the_shape_and_names_each_drift():
    schema = load_schema("outbox_status.schema.json")
    assert schema_errors(_status(), schema) == []
    errors = schema_errors(_status(stuck_processing=-1, oldest_pending_age_seconds="old",
                                   leases=[{"owner": "w", "rows": 1}]), schema)
    assert "$.outboxes.search.stuck_processing: -1 < minimum 0" in errors
    assert "$.outboxes.search.oldest_pending_age_seconds: expected number/null, got str" in errors
    assert "$.outboxes.search.leases[0]: missing required 'lease_until'" in errors
