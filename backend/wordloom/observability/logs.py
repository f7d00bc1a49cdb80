"""Logging: one JSON object per line (LOG_JSON, default true) with secrets masked.

Each record carries ts, level, logger, message, and trace_id/span_id when an OpenTelemetry span is
active.  Masking happens in the formatter, so it covers messages, arguments and tracebacks alike.
An uncaught exception (main thread or any other) is logged through the same formatter instead of
Python's default hook, which would print the raw traceback, secrets and all, to stderr.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time

from ..redact import redact
from ..settings import Env

# color_message: uvicorn's copy of the message with ANSI colour codes, noise in a JSON line.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}


def _trace_ids() -> dict:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx or not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        payload.update(_trace_ids())
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value if isinstance(value, (int, float, bool)) or value is None else redact(value)
        if record.exc_info:
            payload["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class CurrentStderrHandler(logging.StreamHandler):
    """Writes each record to `sys.stderr` as it is at that moment, not as it was at setup.

    Why: a command run in-process (tests, the bench) sets logging up while sys.stderr is a capture
    that is closed afterwards; a handler holding that object printed "--- Logging error ---
    ValueError: I/O operation on closed file" for every later record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it; the property decides
        pass


def setup_logging(environ=None, stream=None) -> None:
    env = Env(environ)
    level = (env.str("LOG_LEVEL", "INFO") or "INFO").upper()
    handler = logging.StreamHandler(stream) if stream is not None else CurrentStderrHandler()
    if env.bool("LOG_JSON", True):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    for noisy in ("elastic_transport", "urllib3", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    install_excepthooks()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def _log_uncaught(exc_type, exc, tb, where: str) -> None:
    logging.getLogger("wordloom.uncaught").critical("uncaught exception in %s", where, exc_info=(exc_type, exc, tb))
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # pragma: no cover - a closed stream at exit
            pass


def install_excepthooks() -> None:
    """Route uncaught exceptions through logging (one redacted JSON line) instead of the default
    hooks' raw traceback.  KeyboardInterrupt keeps Python's behaviour."""
    def main_hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            return sys.__excepthook__(exc_type, exc, tb)
        _log_uncaught(exc_type, exc, tb, "main thread")

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback,
                      f"thread {getattr(args.thread, 'name', '?')}")

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
