"""Errors a person can act on: reported as one line (never a traceback) with an exit code."""
from __future__ import annotations


class OperatorError(Exception):
    """A runtime failure to report as one line; `code` is the process exit status (1 by default)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
