"""A loopback HTTP proxy in front of the real Elasticsearch-compatible server, for fault tests.

It forwards every request unchanged and records it (method, path, body size, the status it
answered, the document ids it rejected).  Rules, checked in order for each request, inject the
faults real clusters produce:

    proxy.add(Answer(status=429), when=is_bulk, times=1)       the whole request answered 429
    proxy.add(Answer(status=413), when=body_over(4096))        413 for bodies over 4 KiB
    proxy.add(Drop(), when=nth(3))                             the 3rd request: connection closed
    proxy.add(RejectItems(ids={"block:..."}, status=429))      per-item 429 inside a _bulk
    proxy.add(Slow(after=0.2))                                 forwarded, answered 0.2 s late

RejectItems does what a real cluster under pressure does: HTTP 200, `errors: true`, and a 429 for
the chosen items.  Only the other items are forwarded, so the server's state is truthful (a
rejected item really was not written).  `stop_listening()` / `start_listening()` close and reopen
the listening socket on the same port (connection refused meanwhile).
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length", "host"}
ES_HEADERS = {"X-Elastic-Product": "Elasticsearch",
              "Content-Type": "application/vnd.elasticsearch+json;compatible-with=8"}


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    index: int  # 1-based position among all requests the proxy received

    @property
    def is_bulk(self) -> bool:
        return self.path.split("?", 1)[0].rstrip("/").endswith("_bulk")

    def bulk_actions(self) -> list["BulkItem"]:
        return parse_bulk(self.body) if self.is_bulk else []


@dataclass
class BulkItem:
    action: str  # index | create | update | delete
    doc_id: str
    index: str | None
    lines: list[bytes]


@dataclass
class Record:
    method: str
    path: str
    size: int
    status: int | None  # None: the connection was dropped
    rejected: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def is_bulk(self) -> bool:
        return self.path.split("?", 1)[0].rstrip("/").endswith("_bulk")


def parse_bulk(body: bytes) -> list[BulkItem]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    items, i = [], 0
    while i < len(lines):
        meta = json.loads(lines[i])
        action = next(iter(meta))
        doc_id = str(meta[action].get("_id"))
        n = 1 if action == "delete" else 2
        items.append(BulkItem(action, doc_id, meta[action].get("_index"), lines[i:i + n]))
        i += n
    return items


# -- request predicates ------------------------------------------------------------------------------
def is_bulk(req: Request) -> bool:
    return req.is_bulk


def always(_req: Request) -> bool:
    return True


def nth(*positions: int) -> Callable[[Request], bool]:
    wanted = set(positions)
    return lambda req: req.index in wanted


def body_over(max_bytes: int) -> Callable[[Request], bool]:
    return lambda req: len(req.body) > max_bytes


def ratio(p: float, seed: int) -> Callable[[Request], bool]:
    rng = random.Random(seed)
    lock = threading.Lock()

    def pick(_req: Request) -> bool:
        with lock:
            return rng.random() < p
    return pick


def document_write(req: Request) -> bool:
    """A single-document write (index or delete by id), the per-event mode's requests."""
    return req.method in ("PUT", "POST", "DELETE") and "/_doc/" in req.path


# -- actions -----------------------------------------------------------------------------------------
@dataclass
class Answer:
    """Answer the whole request with `status` without forwarding it."""

    status: int
    body: dict | None = None

    def payload(self) -> bytes:
        body = self.body or {"error": {"type": "proxy_injected", "reason": f"injected {self.status} by es_proxy"},
                             "status": self.status}
        return json.dumps(body).encode()


@dataclass
class Drop:
    """Close the connection without an answer (optionally after forwarding the request)."""

    after_forward: bool = False


@dataclass
class Slow:
    """Forward, but only after `before` seconds, and answer `after` seconds after the server did
    (the write has landed while the client still waits: the window a kill -9 must survive)."""

    before: float = 0.0
    after: float = 0.0


@dataclass
class RejectItems:
    """Per-item rejection inside a _bulk: items whose `_id` is in `ids`, or for which `pick(doc_id)`
    says so, are answered `status` (429 by default); the rest are forwarded."""

    ids: Iterable[str] | None = None
    pick: Callable[[str], bool] | None = None
    status: int = 429

    def rejects(self, doc_id: str) -> bool:
        if self.ids is not None and doc_id in set(self.ids):
            return True
        return bool(self.pick and self.pick(doc_id))


@dataclass
class Rule:
    action: object
    when: Callable[[Request], bool]
    times: int | None  # None: forever
    hits: int = 0

    def live(self) -> bool:
        return self.times is None or self.hits < self.times


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hung up (killed worker, closed pool) is part of the tests, not an error


class ESProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 9200
        self.host = host
        self.rules: list[Rule] = []
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._count = 0
        self._open: set = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start_listening()

    # -- life -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_listening(self) -> None:
        server = _QuietServer((self.host, self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="es-proxy", daemon=True)
        self._thread.start()

    def stop_listening(self) -> None:
        """Close the listening socket and every open client connection (keep-alive ones too):
        new connections are refused until start_listening()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            open_conns, self._open = list(self._open), set()
        for sock in open_conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.stop_listening()

    def __enter__(self) -> "ESProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- rules ----------------------------------------------------------------------------------
    def add(self, action, when: Callable[[Request], bool] = is_bulk, times: int | None = None) -> Rule:
        rule = Rule(action, when, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def bulk_records(self) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.is_bulk]

    def _match(self, req: Request):
        with self._lock:
            for rule in self.rules:
                if rule.live() and rule.when(req):
                    rule.hits += 1
                    return rule.action
        return None

    # -- forwarding -----------------------------------------------------------------------------
    def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(method, path, body=body if body or method in ("POST", "PUT") else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], data
        finally:
            conn.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self._count += 1
            req = Request(handler.command, handler.path, body, self._count)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        record = Record(req.method, req.path, len(body), None,
                        ids=[item.doc_id for item in req.bulk_actions()])
        action = self._match(req)
        try:
            if isinstance(action, Drop):
                if action.after_forward:
                    self._forward(req.method, req.path, headers, body)
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if isinstance(action, Answer):
                record.status = action.status
                self._reply(handler, action.status, list(ES_HEADERS.items()), action.payload())
                return
            if isinstance(action, RejectItems) and req.is_bulk:
                status, out_headers, data, rejected = self._partial_bulk(req, headers, action)
                record.status, record.rejected = status, rejected
                self._reply(handler, status, out_headers, data)
                return
            if isinstance(action, Slow) and action.before:
                time.sleep(action.before)
            status, out_headers, data = self._forward(req.method, req.path, headers, body)
            record.status = status
            if isinstance(action, Slow) and action.after:
                time.sleep(action.after)
            self._reply(handler, status, out_headers, data)
        finally:
            with self._lock:
                self.records.append(record)

    def _partial_bulk(self, req: Request, headers: dict, rule: RejectItems):
        items = req.bulk_actions()
        rejected = [i for i, item in enumerate(items) if rule.rejects(item.doc_id)]
        forward = [item for i, item in enumerate(items) if i not in set(rejected)]
        answers: list[dict | None] = [None] * len(items)
        took = 0
        if forward:
            payload = b"".join(line + b"\n" for item in forward for line in item.lines)
            status, out_headers, data = self._forward(req.method, req.path, headers, payload)
            if status != 200:  # the server refused the whole request: pass that on
                return status, out_headers, data, []
            upstream = json.loads(data)
            took = upstream.get("took", 0)
            it = iter(upstream["items"])
            for i in range(len(items)):
                if i not in set(rejected):
                    answers[i] = next(it)
        for i in rejected:
            item = items[i]
            answers[i] = {item.action: {
                "_index": item.index or req.path.strip("/").split("/")[0],
                "_id": item.doc_id, "status": rule.status,
                "error": {"type": "es_rejected_execution_exception",
                          "reason": f"rejected execution (injected {rule.status} by es_proxy)"},
            }}
        errors = any(next(iter(a.values())).get("error") for a in answers)
        body = json.dumps({"took": took, "errors": errors, "items": answers}).encode()
        return 200, list(ES_HEADERS.items()), body, [items[i].doc_id for i in rejected]

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        handler.send_response(status)
        for k, v in headers:
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._open.add(self.connection)

            def finish(self):
                with proxy._lock:
                    proxy._open.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

            def log_message(self, *args):
                pass

        return Handler
