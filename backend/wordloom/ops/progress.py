"""Progress of long operations: a tqdm bar on a terminal, a plain line every few seconds otherwise.

Progress goes to stderr so stdout keeps only the result lines scripts parse (`Rebuild OK: ...`).
Under honcho, a CI log or `| tee`, a bar would be a smear of carriage returns; a line every
WORDLOOM_PROGRESS_INTERVAL_SECONDS (5) is readable there and proves the tool is alive.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from ..settings import Env


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 interval: float | None = None, force_lines: bool = False):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self.interval = interval if interval is not None else Env().float(
            "WORDLOOM_PROGRESS_INTERVAL_SECONDS", 5.0, minimum=0)
        self._last_line = self.started
        self._bar = None
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        if is_tty and not force_lines:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, file=self.stream, unit="row", dynamic_ncols=True)

    def set_label(self, label: str) -> None:
        self.label = label
        if self._bar is not None:
            self._bar.set_description(label)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._print_line(now)

    def _print_line(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        of_total = f"/{self.total}" if self.total is not None else ""
        print(f"[progress] {self.label}: {self.done}{of_total} rows, {self.done / elapsed:.0f}/s, "
              f"{elapsed:.0f}s elapsed", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.done and time.monotonic() - self.started >= self.interval:
            self._print_line(time.monotonic())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
