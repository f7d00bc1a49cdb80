from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...redact import redact

router = APIRouter(tags=["health"])


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


@router.get("/api/v1/health")
def health(request: Request):
    state = request.app.state
    try:
        with state.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        db = {"ok": True}
    except Exception as exc:  # any failure is an answer here, not a crash
        db = {"ok": False, "error": _first_line(exc)}
    try:
        es_ok = bool(state.es.ping())
        es = {"ok": es_ok} if es_ok else {"ok": False, "error": "ping failed"}
    except Exception as exc:
        es = {"ok": False, "error": _first_line(exc)}
    ok = db["ok"] and es["ok"]
    return JSONResponse({"ok": ok, "db": db, "es": es}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
