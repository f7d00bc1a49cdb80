"""Tie a child server's life to ours: if the supervisor is SIGKILLed, the kernel signals the child.

Used as subprocess preexec_fn.  CPython runs preexec_fn after switching uid/gid, so the setting
survives the switch to the unprivileged service user.
"""
from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM):
    def _preexec() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return _preexec
