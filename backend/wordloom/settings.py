"""Configuration read from the environment, with the names and defaults of the v3 contract.

Rules that apply to every variable:
- an empty value means unset (v3 let `ELASTIC_URL=` override its default; C23);
- a value that does not parse is a ConfigError naming the variable, never a silent default;
- booleans accept 1/true/yes/y/on and 0/false/no/n/off.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Mapping

TRUE_WORDS = {"1", "true", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "off"}
PIPELINE_DEPTH = 2  # batches at the sink at once by default: +20 % events/s over 1, 3 no better (docs/BENCHMARKS.md)


class ConfigError(ValueError):
    """A configuration value that a person must fix; the message names the variable."""


class Env:
    """Typed reads over a mapping (os.environ by default) where empty means unset."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def first_set(self, *names: str) -> str | None:
        """Of several names for one setting, the one that decides: a variable exported by the
        person beats one an env file supplied; between equals, the earlier (more specific) name."""
        from_file = set((self.environ.get("_WORDLOOM_FROM_ENV_FILE") or "").split(","))
        present = [n for n in names if self.raw(n) is not None]
        exported = [n for n in present if n not in from_file]
        return (exported or present or [None])[0]

    def require(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{name} is required but not set (set it in the env file or export it)")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        low = value.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean (use 1/true/yes/on or 0/false/no/off)")

    def int(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not an integer") from None
        if minimum is not None and parsed < minimum:
            raise ConfigError(f"{name}={parsed} must be >= {minimum}")
        return parsed

    def float(self, name: str, default: float | None = None, *, minimum: float | None = None) -> float | None:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number") from None
        if minimum is not None and parsed < minimum:
            raise ConfigError(f"{name}={parsed} must be >= {minimum}")
        return parsed


_SQLALCHEMY_SCHEME = re.compile(r"^(postgres|postgresql)(\+[a-z0-9_]+)?://", re.IGNORECASE)


def normalize_database_url(url: str) -> str:
    """Accept the spellings old runbooks export: postgres://, postgresql+psycopg://, +psycopg2, +asyncpg."""
    m = _SQLALCHEMY_SCHEME.match(url)
    if not m:
        raise ConfigError("DATABASE_URL must start with postgresql:// (or postgres://, postgresql+psycopg://)")
    return "postgresql://" + url[m.end():]


def database_url(env: Env | None = None) -> str:
    return normalize_database_url((env or Env()).require("DATABASE_URL"))


def database_name(url: str) -> str:
    """The database name of a postgresql:// URL (used by the environment guard)."""
    tail = url.split("://", 1)[-1]
    path = tail.split("/", 1)[1] if "/" in tail else ""
    return path.split("?", 1)[0]


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (credentials and options kept)."""
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def default_worker_id() -> str:
    # hostname:pid -- v3's chronicle worker used the hostname only, so two workers on one host
    # shared an owner and acked each other's rows.
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class WorkerSettings:
    projection: str  # "search" | "chronicle"
    database_url: str
    worker_id: str
    batch_size: int
    # OUTBOX_CONCURRENCY is accepted (v3 env files set it) but not used as threads: scale out with
    # more worker processes (claims use FOR UPDATE SKIP LOCKED, each process has its own owner id
    # and lease); the startup line says so.  What one process does overlap is OUTBOX_PIPELINE.
    concurrency: int
    poll_interval: float
    lease_seconds: float
    max_processing_seconds: float
    max_attempts: int
    max_reclaims: int
    terminal_on_transient: bool
    base_backoff: float
    max_backoff: float
    reclaim_interval: float
    shutdown_grace: float
    health_max_silence: float
    db_ping_timeout: float
    db_ping_interval: float
    db_ping_fails_before_draining: int
    metrics_port: int | None
    http_port: int | None
    run_seconds: float
    projection_version: int
    wordloom_env: str | None
    elastic_url: str = "http://localhost:9200"
    elastic_index: str = "wordloom-search-index"
    elastic_api_key: str | None = None
    # OUTBOX_USE_ES_BULK: unset -> _bulk (one request per batch; this engine's default, because the
    # per-item classification makes _bulk as safe as per-event); an explicit 0 keeps v3's per-event
    # index/delete requests, classified and lease-renewed the same way.
    use_es_bulk: bool = True
    require_es_ready: bool = False
    bulk_max_bytes: int = 5 * 1024 * 1024
    experiments: dict = field(default_factory=dict)
    # While the worker waits for the database at startup it repeats a WARNING this often (C14).
    db_wait_log_seconds: float = 10.0
    # OUTBOX_PIPELINE (default on): claim and read the next batch while the current one is at the
    # sink (outbox/pipeline.py); 0 processes one batch at a time, start to end.
    pipeline: bool = True
    # OUTBOX_PIPELINE_DEPTH: how many batches may be at the sink at once while the next is read.
    pipeline_depth: int = PIPELINE_DEPTH
    # OUTBOX_DELIVER_IN_CLAIM (default on): a sink in the outbox's own database (the chronicle)
    # claims, delivers and settles each batch in one statement (runner.run_in_claim); 0 gives it
    # the durable claim + lease + ack like the search worker.
    deliver_in_claim: bool = True

    @property
    def service_name(self) -> str:
        return f"wordloom-{self.projection}-outbox-worker"


_DEFAULTS = {
    # name: (metrics port, batch size, poll seconds, max backoff)
    "search": (9108, 100, 1.0, 30.0),
    "chronicle": (9110, 50, 0.2, 10.0),
}


def worker_settings(projection: str, environ: Mapping[str, str] | None = None) -> WorkerSettings:
    if projection not in _DEFAULTS:
        raise ConfigError(f"unknown projection {projection!r}")
    env = Env(environ)
    metrics_port, batch, poll, max_backoff = _DEFAULTS[projection]
    poll_ms = env.float("OUTBOX_POLL_INTERVAL_MS", minimum=1)
    poll_s = poll_ms / 1000.0 if poll_ms is not None else env.float("OUTBOX_POLL_INTERVAL_SECONDS", poll, minimum=0.001)
    batch_size = env.int("OUTBOX_BULK_SIZE", None, minimum=1) or env.int("OUTBOX_BATCH_SIZE", batch, minimum=1)
    lease = env.float("OUTBOX_LEASE_SECONDS", 30.0, minimum=1)
    experiments = {k: v for k, v in (env.environ.items()) if k.startswith(("OUTBOX_EXPERIMENT_", "OUTBOX_FAULT_INJECT_")) and v.strip()}
    return WorkerSettings(
        projection=projection,
        database_url=database_url(env),
        worker_id=env.str("OUTBOX_WORKER_ID") or default_worker_id(),
        batch_size=batch_size,
        concurrency=env.int("OUTBOX_CONCURRENCY", 1, minimum=1),
        poll_interval=poll_s,
        lease_seconds=lease,
        max_processing_seconds=env.float("OUTBOX_MAX_PROCESSING_SECONDS", lease * 4, minimum=1),
        max_attempts=env.int("OUTBOX_MAX_ATTEMPTS", 10, minimum=1),
        max_reclaims=env.int("OUTBOX_MAX_RECLAIMS", 3, minimum=1),
        terminal_on_transient=env.bool("OUTBOX_TERMINAL_ON_TRANSIENT", False),
        base_backoff=env.float("OUTBOX_BASE_BACKOFF_SECONDS", 0.5, minimum=0),
        max_backoff=env.float("OUTBOX_MAX_BACKOFF_SECONDS", max_backoff, minimum=0),
        reclaim_interval=env.float("OUTBOX_RECLAIM_INTERVAL_SECONDS", 5.0, minimum=0.05),
        shutdown_grace=env.float("OUTBOX_SHUTDOWN_GRACE_SECONDS", 25.0, minimum=0),
        health_max_silence=env.float("OUTBOX_HEALTH_MAX_SILENCE_SECONDS", 10.0, minimum=0.1),
        db_ping_timeout=env.float("OUTBOX_DB_PING_TIMEOUT_SECONDS", 1.0, minimum=0.05),
        db_ping_interval=env.float("OUTBOX_DB_PING_INTERVAL_SECONDS", 1.0, minimum=0.05),
        db_ping_fails_before_draining=env.int("OUTBOX_DB_PING_FAILS_BEFORE_DRAINING", 3, minimum=1),
        # One env file gives both workers distinct ports with the projection-specific names; an
        # exported OUTBOX_METRICS_PORT (the v3 name old runbooks use) still beats the file's.
        metrics_port=env.int(env.first_set(f"{projection.upper()}_OUTBOX_METRICS_PORT", "OUTBOX_METRICS_PORT")
                             or "OUTBOX_METRICS_PORT", metrics_port, minimum=0),
        http_port=env.int("OUTBOX_HTTP_PORT", None, minimum=0),
        run_seconds=env.float("OUTBOX_RUN_SECONDS", 0.0, minimum=0),
        projection_version=env.int("CHRONICLE_PROJECTION_VERSION", None, minimum=1)
        or env.int("OUTBOX_PROJECTION_VERSION", 1, minimum=1),
        wordloom_env=env.str("WORDLOOM_ENV"),
        elastic_url=env.str("ELASTIC_URL", "http://localhost:9200"),
        elastic_index=env.str("ELASTIC_INDEX", "wordloom-search-index"),
        elastic_api_key=env.str("ELASTIC_API_KEY"),
        use_es_bulk=env.bool("OUTBOX_USE_ES_BULK", True),
        require_es_ready=env.bool("OUTBOX_REQUIRE_ES_READY", False),
        bulk_max_bytes=env.int("OUTBOX_BULK_MAX_BYTES", 5 * 1024 * 1024, minimum=1024),
        experiments=experiments,
        db_wait_log_seconds=env.float("OUTBOX_DB_WAIT_LOG_SECONDS", 10.0, minimum=0.1),
        pipeline=env.bool("OUTBOX_PIPELINE", True),
        pipeline_depth=env.int("OUTBOX_PIPELINE_DEPTH", PIPELINE_DEPTH, minimum=1),
        deliver_in_claim=env.bool("OUTBOX_DELIVER_IN_CLAIM", True),
    )


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    elastic_url: str
    elastic_index: str
    elastic_api_key: str | None
    host: str
    port: int
    wordloom_env: str | None


def api_settings(environ: Mapping[str, str] | None = None) -> ApiSettings:
    env = Env(environ)
    return ApiSettings(
        database_url=database_url(env),
        elastic_url=env.str("ELASTIC_URL", "http://localhost:9200"),
        elastic_index=env.str("ELASTIC_INDEX", "wordloom-search-index"),
        elastic_api_key=env.str("ELASTIC_API_KEY"),
        host=env.str("API_HOST", "127.0.0.1"),
        port=env.int("API_PORT", 30001, minimum=1),
        wordloom_env=env.str("WORDLOOM_ENV"),
    )
