"""Export traces as evidence, from the Jaeger query API (v1) or from the local span files.

Jaeger query API v1: GET {base}/services, {base}/operations?service=S,
{base}/traces?service=S&lookback=L&limit=N[&operation=O][&tags=JSON].  When Jaeger cannot be
reached the same three files are built from var/traces/*.jsonl in Jaeger's JSON shape, so a drill
run without Jaeger still leaves evidence.  File names are part of the contract:
jaeger-services-<ts>.json, jaeger-operations-<ts>.json, jaeger-traces-<label>-<ts>.json.
"""
from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..redact import redact, register_secret
from .tracing import traces_dir

_LOOKBACK = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class JaegerUnavailable(RuntimeError):
    pass


def lookback_seconds(text: str) -> int:
    m = _LOOKBACK.match(text.strip())
    if not m:
        raise ValueError(f"lookback {text!r} is not like 30m, 1h, 24h or 7d")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


@dataclass
class Query:
    service: str
    lookback: str = "1h"
    limit: int = 20
    operation: str | None = None
    tags: dict | None = None

    @property
    def label(self) -> str:
        if self.tags:
            key, value = next(iter(self.tags.items()))
            return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{key.split('.')[-1]}-{value}")[:80]
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.operation or "all")


class JaegerApi:
    def __init__(self, base_url: str, timeout: float = 5.0):
        # urllib cannot send `user:password@` from a URL; turn it into a Basic header (a proxy in
        # front of Jaeger), and keep the credentials out of every message.
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))
        self.headers: dict[str, str] = {}
        if parts.username is not None or parts.password is not None:
            user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
            register_secret(password)
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
            register_secret(token)
            host = parts.hostname or ""
            netloc = f"[{host}]" if ":" in host else host
            netloc += f":{parts.port}" if parts.port else ""
            parts = parts._replace(netloc=netloc)
        self.base = urllib.parse.urlunsplit(parts)
        self.timeout = timeout

    @property
    def where(self) -> str:
        return redact(f"Jaeger at {self.base}")

    def _get(self, path: str, params: dict | None = None) -> dict:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        try:
            request = urllib.request.Request(url, headers=self.headers)
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The base URL may carry credentials (a proxy in front of Jaeger): say where, not who.
            raise JaegerUnavailable(redact(f"Jaeger query API not reachable at {self.base} ({exc})")) from None

    def services(self) -> dict:
        return self._get("/services")

    def operations(self, service: str) -> dict:
        return self._get("/operations", {"service": service})

    def traces(self, q: Query) -> dict:
        return self._get("/traces", {
            "service": q.service, "lookback": q.lookback, "limit": q.limit, "operation": q.operation,
            "tags": json.dumps(q.tags) if q.tags else None,
        })


class LocalSpans:
    """The same three answers, built from the JSON-lines span files the services write."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory or traces_dir())

    @property
    def where(self) -> str:
        return f"local span files in {self.directory}"

    def _spans(self) -> list[dict]:
        spans: list[dict] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip():
                    try:
                        spans.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut by a crash; the rest is still evidence
        return spans

    def services(self) -> dict:
        names = sorted({s["service"] for s in self._spans()})
        return {"data": names, "total": len(names), "limit": 0, "offset": 0, "errors": None}

    def operations(self, service: str) -> dict:
        names = sorted({s["name"] for s in self._spans() if s["service"] == service})
        data = [{"name": n, "spanKind": ""} for n in names]
        return {"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None}

    def traces(self, q: Query) -> dict:
        cutoff_ns = (time.time() - lookback_seconds(q.lookback)) * 1e9
        by_trace: dict[str, list[dict]] = {}
        for s in self._spans():
            by_trace.setdefault(s["traceId"], []).append(s)
        matching = []
        for trace_id, spans in by_trace.items():
            if not any(s["service"] == q.service and (s.get("startTimeUnixNano") or 0) >= cutoff_ns
                       and (q.operation is None or s["name"] == q.operation)
                       and all(str(s["attributes"].get(k)) == str(v) for k, v in (q.tags or {}).items())
                       for s in spans):
                continue
            matching.append((max(s.get("startTimeUnixNano") or 0 for s in spans), trace_id, spans))
        matching.sort(reverse=True)
        data = [_jaeger_trace(tid, spans) for _, tid, spans in matching[: q.limit]]
        return {"data": data, "total": len(data), "limit": q.limit, "offset": 0, "errors": None}


def _tag(key: str, value) -> dict:
    kind = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else \
        "float64" if isinstance(value, float) else "string"
    return {"key": key, "type": kind, "value": value if kind != "string" else str(value)}


def _jaeger_trace(trace_id: str, spans: list[dict]) -> dict:
    processes: dict[str, dict] = {}
    service_pid: dict[str, str] = {}
    out = []
    for s in spans:
        pid = service_pid.setdefault(s["service"], f"p{len(service_pid) + 1}")
        processes[pid] = {"serviceName": s["service"], "tags": []}
        refs = []
        if s.get("parentSpanId"):
            refs.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": s["parentSpanId"]})
        refs += [{"refType": "FOLLOWS_FROM", "traceID": l["traceId"], "spanID": l["spanId"]} for l in s.get("links", [])]
        start = int(s.get("startTimeUnixNano") or 0)
        end = int(s.get("endTimeUnixNano") or start)
        out.append({
            "traceID": trace_id, "spanID": s["spanId"], "operationName": s["name"], "references": refs,
            "startTime": start // 1000, "duration": max(0, end - start) // 1000,
            "tags": [_tag(k, v) for k, v in sorted(s.get("attributes", {}).items())],
            "logs": [], "processID": pid, "warnings": None,
        })
    return {"traceID": trace_id, "spans": out, "processes": processes, "warnings": None}


def export(source, q: Query, outdir: Path, stamp: str | None = None) -> list[Path]:
    """Write the three contract files into `outdir`; return their paths."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir.mkdir(parents=True, exist_ok=True)
    answers = [
        (f"jaeger-services-{stamp}.json", source.services()),
        (f"jaeger-operations-{stamp}.json", source.operations(q.service)),
        (f"jaeger-traces-{q.label}-{stamp}.json", source.traces(q)),
    ]
    paths = []
    for name, body in answers:
        path = outdir / name
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)  # never leave a half-written evidence file
        paths.append(path)
    return paths
