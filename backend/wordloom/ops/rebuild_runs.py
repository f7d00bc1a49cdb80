"""What every rebuild shares: one run per projection at a time, projection_status at start and end,
a checkpoint committed with each batch (for --resume), and a retry of a batch that lost a deadlock
against a concurrent writer.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import psycopg
from psycopg import errors as pg_errors

from ..db.queries import query
from ..settings import Env

log = logging.getLogger("wordloom.ops.rebuild")

NIL_UUID = uuid.UUID(int=0)
# Lose-and-retry errors: the batch rolled back whole, running it again is safe.
RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, pg_errors.LockNotAvailable)
BATCH_ATTEMPTS = 5
T = TypeVar("T")


class RebuildError(RuntimeError):
    """A rebuild refused to start or could not finish; the message says why."""


class RebuildUsageError(RebuildError):
    """The options do not fit (e.g. --resume with different options): a usage error."""


@dataclass
class Checkpoint:
    phase: str
    last_key: uuid.UUID | None
    counts: dict = field(default_factory=dict)
    resumed: bool = False


@contextmanager
def exclusive_run(conn: psycopg.Connection, projection: str) -> Iterator[None]:
    got = conn.execute(query("rebuild_try_lock"), {"projection": projection}).fetchone()[0]
    conn.commit()
    if not got:
        raise RebuildError(f"another rebuild of {projection} is running (wait for it, or stop it first)")
    try:
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(query("rebuild_unlock"), {"projection": projection})
            conn.commit()
        except psycopg.Error:  # the connection is gone: so is the lock
            pass


@contextmanager
def projection_run(conn: psycopg.Connection, projection: str) -> Iterator[None]:
    """projection_status: last_started_at now, and at the end duration, success and error."""
    conn.execute(query("rebuild_status_started"), {"projection": projection})
    conn.commit()
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        conn.rollback()
        _finish(conn, projection, started, False, f"{type(exc).__name__}: {exc}"[:2000])
        raise
    _finish(conn, projection, started, True, None)


def _finish(conn, projection, started, success, error) -> None:
    try:
        conn.execute(query("rebuild_status_finished"), {
            "projection": projection, "duration": time.monotonic() - started, "success": success, "error": error})
        conn.commit()
    except psycopg.Error:
        log.warning("could not record the end of rebuild %s in projection_status", projection)


def begin_checkpoint(conn: psycopg.Connection, projection: str, first_phase: str, options: dict,
                     resume: bool, out: Callable[[str], None]) -> Checkpoint:
    """Where to start: the stored checkpoint on --resume, else the beginning (overwriting it)."""
    row = conn.execute(query("rebuild_checkpoint_get"), {"projection": projection}).fetchone()
    if resume and row is not None:
        phase, last_key, stored_options, counts, started_at = row
        if stored_options != options:
            raise RebuildUsageError(
                f"--resume: the interrupted rebuild ran with {json.dumps(stored_options, sort_keys=True)}, "
                f"not {json.dumps(options, sort_keys=True)}; pass the same options or start over without --resume")
        conn.commit()
        out(f"Resuming {projection} from phase {phase} after {last_key or 'the start'} "
            f"(started {started_at:%Y-%m-%d %H:%M:%S} UTC)")
        return Checkpoint(phase, last_key, dict(counts), resumed=True)
    if resume:
        out(f"Nothing to resume for {projection}; starting from the beginning")
    elif row is not None:
        out(f"An interrupted rebuild of {projection} was found (phase {row[0]}); starting over "
            "(use --resume to continue it instead)")
    conn.execute(query("rebuild_checkpoint_reset"), {
        "projection": projection, "phase": first_phase, "options": json.dumps(options)})
    conn.commit()
    return Checkpoint(first_phase, None, {})


def save_checkpoint(conn: psycopg.Connection, projection: str, cp: Checkpoint, options: dict) -> None:
    """Call inside the batch's transaction: the checkpoint commits with the batch or not at all."""
    conn.execute(query("rebuild_checkpoint_save"), {
        "projection": projection, "phase": cp.phase, "last_key": cp.last_key,
        "options": json.dumps(options), "counts": json.dumps(cp.counts)})


def clear_checkpoint(conn: psycopg.Connection, projection: str) -> None:
    conn.execute(query("rebuild_checkpoint_clear"), {"projection": projection})
    conn.commit()


def run_batch(conn: psycopg.Connection, body: Callable[[], T]) -> T:
    """Run `body` in one transaction, again if it lost a deadlock to a concurrent writer."""
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            with conn.transaction():
                return body()
        except RETRYABLE as exc:
            if attempt == BATCH_ATTEMPTS:
                raise RebuildError(f"a batch kept conflicting with concurrent writes: {exc}") from None
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def pause_between_batches() -> None:
    """WORDLOOM_REBUILD_BATCH_SLEEP_SECONDS: a pause after each committed batch, so a test (or a
    person on a busy database) can slow a rebuild down; tests kill it mid-way to prove --resume."""
    seconds = Env().float("WORDLOOM_REBUILD_BATCH_SLEEP_SECONDS", 0.0, minimum=0)
    if seconds:
        time.sleep(seconds)


def walk_phases(conn: psycopg.Connection, projection: str, cp: Checkpoint, phases: list[str],
                batches: dict[str, Callable], opts, progress, limited: dict[str, str]) -> None:
    """Run the phases from the checkpoint on.  A batch function takes (conn, after, size, opts,
    counts) and returns (last key of its page, rows scanned) or (None, 0) at the end of the phase.
    `limited` maps a phase to the count that --limit caps (opts.limit, 0 = no cap)."""
    start = phases.index(cp.phase) if cp.phase in phases else 0
    for phase in phases[start:]:
        if phase != cp.phase:
            cp.phase, cp.last_key = phase, None
        progress.set_label(f"{progress.label.split(':')[0]}: {phase}")
        _walk_phase(conn, projection, cp, batches[phase], opts, progress, limited.get(phase))


def _walk_phase(conn, projection, cp: Checkpoint, batch: Callable, opts, progress, counted: str | None) -> None:
    while True:
        size = opts.batch_size
        if opts.limit and counted:
            remaining = opts.limit - cp.counts.get(counted, 0)
            if remaining <= 0:
                return
            size = min(size, remaining)

        def body():
            counts = dict(cp.counts)
            last, scanned = batch(conn, cp.last_key or NIL_UUID, size, opts, counts)
            if last is not None:
                save_checkpoint(conn, projection, Checkpoint(cp.phase, last, counts), opts.checkpoint_key())
            return last, scanned, counts

        last, scanned, counts = run_batch(conn, body)
        if last is None:
            return
        cp.last_key, cp.counts = last, counts
        progress.update(scanned)
        pause_between_batches()
