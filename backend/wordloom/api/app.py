"""Application factory: settings, pool, Elasticsearch client, environment guard, routers, errors."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

import psycopg
from elasticsearch import Elasticsearch
from elasticsearch import ApiError as EsApiError
from elastic_transport import TransportError as EsTransportError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool, PoolTimeout

from ..db.connect import connect
from ..domain import Conflict, NotFound
from ..envguard import check_environment
from ..redact import host_port
from ..settings import ApiSettings, api_settings
from .tracing import install_tracing
from .routers import blocks, books, bookshelves, health, libraries, search, tags

log = logging.getLogger("wordloom.api")
API_PREFIX = "/api/v1"


def _configure_connection(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


def open_pool(settings: ApiSettings) -> ConnectionPool:
    return ConnectionPool(settings.database_url, min_size=1, max_size=10, open=True, timeout=10,
                          kwargs={"autocommit": True}, configure=_configure_connection, name="wordloom-api")


def open_elastic(settings: ApiSettings) -> Elasticsearch:
    return Elasticsearch(settings.elastic_url, api_key=settings.elastic_api_key, request_timeout=10)


def guard_environment(settings: ApiSettings) -> None:
    """Refuse another environment's database (raises EnvironmentMismatch, a one-line ConfigError)."""
    with connect(settings.database_url, autocommit=True) as conn:
        check_environment(conn, settings.database_url, settings.wordloom_env)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    def conflict(request: Request, exc: Conflict):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(psycopg.errors.IntegrityError)
    def integrity(request: Request, exc: psycopg.errors.IntegrityError):
        # The transaction was rolled back; nothing of the write is left behind.
        detail = exc.diag.message_primary or type(exc).__name__
        return JSONResponse({"detail": f"rejected by the database: {detail}"}, status_code=409)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    def db_down(request: Request, exc: Exception):
        log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    @app.exception_handler(EsTransportError)
    @app.exception_handler(EsApiError)
    def es_down(request: Request, exc: Exception):
        log.warning("search backend error: %s", type(exc).__name__)
        return JSONResponse({"detail": "search backend unavailable"}, status_code=503)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the app.  Settings default to the environment (read when the app starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        s = settings or api_settings()
        guard_environment(s)
        app.state.settings = s
        app.state.pool = open_pool(s)
        app.state.es = open_elastic(s)
        log.info("api ready: database %s, search %s index %s",
                 host_port(s.database_url), host_port(s.elastic_url), s.elastic_index)
        try:
            yield
        finally:
            app.state.es.close()
            app.state.pool.close()

    app = FastAPI(title="Wordloom API", version="4", lifespan=lifespan)
    for module in (libraries, bookshelves, books, blocks, tags, search):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    _error_handlers(app)
    install_tracing(app)
    return app
