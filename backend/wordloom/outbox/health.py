"""Health state of one worker and the one HTTP server that shows it: /metrics, /healthz, /readyz.

Liveness (/healthz) is the loop's heartbeat, not progress: a long batch keeps beating (the lease
keeper beats too), so an orchestrator does not kill a worker that is merely busy.  Readiness
(/readyz) says whether the worker can do its job now: state RUNNING and the database reachable
(and Elasticsearch, when OUTBOX_REQUIRE_ES_READY=1).  v3 served health on metrics port + 2, which
was the chronicle worker's metrics port; here health shares the metrics server unless
OUTBOX_HTTP_PORT names another port.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

RUNNING, DRAINING, STOPPED = "RUNNING", "DRAINING", "STOPPED"


class HealthState:
    def __init__(self, projection: str, worker_id: str, max_silence: float, require_es: bool = False):
        self.projection = projection
        self.worker_id = worker_id
        self.max_silence = max_silence
        self.require_es = require_es
        self._lock = threading.Lock()
        self.state = DRAINING  # not ready until the loop has its connections
        self.reason = "starting"
        self.db_ok = False
        self.db_error: str | None = None
        self.db_checked_at: float | None = None
        self.es_ok: bool | None = None
        self.es_error: str | None = None
        self._heartbeat = time.monotonic()

    def beat(self) -> None:
        self._heartbeat = time.monotonic()

    def set_state(self, state: str, reason: str = "") -> None:
        with self._lock:
            changed = state != self.state
            self.state, self.reason = state, reason
        if changed:
            log.info("worker state", extra={"state": state, "reason": reason, "projection": self.projection})

    def set_db(self, ok: bool, error: str | None = None) -> None:
        with self._lock:
            self.db_ok, self.db_error, self.db_checked_at = ok, error, time.time()

    def set_es(self, ok: bool, error: str | None = None) -> None:
        with self._lock:
            self.es_ok, self.es_error = ok, error

    def _body(self, ok: bool, reason: str) -> dict:
        silence = time.monotonic() - self._heartbeat
        body = {
            "ok": ok, "reason": reason, "projection": self.projection, "worker_id": self.worker_id,
            "state": self.state, "heartbeat_age_seconds": round(silence, 3),
            "db": {"ok": self.db_ok, "error": self.db_error, "checked_at": self.db_checked_at},
        }
        if self.require_es or self.es_ok is not None:
            body["es"] = {"ok": self.es_ok, "error": self.es_error, "required": self.require_es}
        return body

    def liveness(self) -> dict:
        silence = time.monotonic() - self._heartbeat
        if self.state == STOPPED:
            return self._body(False, "stopped")
        if silence > self.max_silence:
            return self._body(False, f"loop silent for {silence:.1f}s")
        return self._body(True, "alive")

    def readiness(self) -> dict:
        if self.state != RUNNING:
            return self._body(False, self.reason or self.state.lower())
        if not self.db_ok:
            return self._body(False, "database unreachable")
        if self.require_es and not self.es_ok:
            return self._body(False, "elasticsearch unreachable")
        return self._body(True, "ready")


def _handler(state: HealthState, registry, serve_metrics: bool, serve_health: bool):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            path = self.path.split("?", 1)[0]
            if serve_metrics and path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif serve_health and path in ("/healthz", "/readyz"):
                body = state.liveness() if path == "/healthz" else state.readiness()
                self._send(200 if body["ok"] else 503, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"ok": false, "reason": "not found"}', "application/json")

        def _send(self, code: int, payload: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # scrapes every few seconds would flood the log
            pass

    return Handler


class HealthServer:
    """Serves /metrics and health on `metrics_port`; health moves to `http_port` when one is set."""

    def __init__(self, state: HealthState, registry, host: str, metrics_port: int, http_port: int | None = None):
        self.state, self.registry, self.host = state, registry, host
        self.metrics_port, self.http_port = metrics_port, http_port
        self.servers: list[ThreadingHTTPServer] = []

    def start(self) -> dict[str, int]:
        """Bind and serve; returns {"metrics": port, "health": port} with the real port numbers.
        Raises OSError naming the port when it is taken."""
        split = self.http_port is not None and self.http_port != self.metrics_port
        specs = [("metrics", self.metrics_port, True, not split)]
        if split:
            specs.append(("health", self.http_port, False, True))
        ports: dict[str, int] = {}
        for name, port, metrics, health in specs:
            try:
                server = ThreadingHTTPServer((self.host, port), _handler(self.state, self.registry, metrics, health))
            except OSError as exc:
                self.stop()
                raise OSError(f"cannot listen on {self.host}:{port} for {name}: {exc.strerror or exc}") from None
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"http-{name}", daemon=True).start()
            self.servers.append(server)
            ports[name] = server.server_address[1]
        ports.setdefault("health", ports["metrics"])
        return ports

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()
