"""`cli.py ops api`: serve the HTTP API with uvicorn on API_HOST:API_PORT."""
from __future__ import annotations

import argparse
import logging
import signal

from ..redact import redact
from ..settings import api_settings
from .base import Command

log = logging.getLogger("wordloom.api")


class ApiServerCommand(Command):
    name = "api"
    help = "run the HTTP API (FastAPI + uvicorn) on API_HOST:API_PORT"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", help="listen address (default: API_HOST, else 127.0.0.1)")
        parser.add_argument("--port", type=int, help="listen port (default: API_PORT, else 30001)")

    def handle(self, args: argparse.Namespace) -> int:
        import uvicorn

        from ..api.app import create_app, guard_environment

        settings = api_settings()
        host = args.host or settings.host
        port = args.port if args.port is not None else settings.port
        # Refuse another environment's database before binding the port: one line, exit 2.
        guard_environment(settings)
        log.info("starting wordloom-api on %s:%s database=%s elastic=%s index=%s env=%s", host, port,
                 redact(settings.database_url), redact(settings.elastic_url), settings.elastic_index,
                 settings.wordloom_env or "-")
        # uvicorn drains on SIGTERM, then re-raises the signal to the handler it found.  Make that
        # handler a clean exit, so a stop by honcho or systemd reads as success (0), not -15.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        # log_config=None keeps our JSON logging.
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
        return 0


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


COMMAND = ApiServerCommand()
