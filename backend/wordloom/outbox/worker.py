"""Assemble a worker process from WorkerSettings: guard, sink, runner, health server, signals.

Process rules (CONTRACT.md section 2, CASES C13): the environment guard refuses with one line and
exit 2; SIGTERM/SIGINT stop claiming and let the batch in flight finish; when
OUTBOX_SHUTDOWN_GRACE_SECONDS runs out (or a second signal comes) the worker releases its rows and
exits 0 at once, because honcho sends SIGKILL 5 s after SIGTERM and a killed worker would leave
its rows `processing` until their leases expire.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time

from elasticsearch import Elasticsearch

from ..db.connect import DatabaseUnavailable, connect
from ..envguard import check_environment
from ..errors import OperatorError
from ..observability.tracing import setup_tracing, shutdown_tracing
from ..redact import host_port, redact
from ..settings import ConfigError, Env, WorkerSettings, worker_settings
from .experiments import Experiments
from .health import HealthServer
from .metrics import OutboxMetrics
from .runner import Runner
from .sinks.chronicle import ChronicleSink
from .sinks.elastic import ElasticSink

log = logging.getLogger(__name__)
ES_REQUEST_TIMEOUT_SECONDS = 30
GUARD_RETRY_CAP_SECONDS = 5.0


def elastic_client(settings: WorkerSettings) -> Elasticsearch:
    # Retries are the outbox's job (per item, with jitter and a budget); the client must not add
    # its own hidden ones.
    return Elasticsearch(settings.elastic_url, api_key=settings.elastic_api_key,
                         request_timeout=ES_REQUEST_TIMEOUT_SECONDS, max_retries=0, retry_on_timeout=False)


def _es_probe(es: Elasticsearch, url: str):
    def probe() -> None:
        if not es.ping():
            raise ConnectionError(f"Elasticsearch at {redact(url)} does not answer")
    return probe


def build_runner(settings: WorkerSettings, *, metrics: OutboxMetrics | None = None, es: Elasticsearch | None = None,
                 experiments: Experiments | None = None, after_state_read=None) -> Runner:
    metrics = metrics or OutboxMetrics(settings.projection)
    experiments = experiments or Experiments.from_mapping(settings.experiments)
    es_probe = None  # readiness also needs Elasticsearch only when OUTBOX_REQUIRE_ES_READY=1
    if settings.projection == "search":
        es = es or elastic_client(settings)
        sink = ElasticSink(es, settings.elastic_index, metrics=metrics, bulk_max_bytes=settings.bulk_max_bytes,
                           experiments=experiments, after_state_read=after_state_read,
                           use_bulk=settings.use_es_bulk)
        if settings.require_es_ready:
            es_probe = _es_probe(es, settings.elastic_url)
    else:
        sink = ChronicleSink(settings.projection_version)
    return Runner(settings, sink, metrics=metrics, experiments=experiments, es_probe=es_probe)


def _guard_environment(settings: WorkerSettings, stopping: threading.Event) -> bool:
    """Check WORDLOOM_ENV against the database; wait for the database if it is not up yet (under
    honcho the services may still be starting).  False when asked to stop while waiting."""
    delay = 0.2
    started = last_said = None
    where = host_port(settings.database_url)
    while not stopping.is_set():
        try:
            with connect(settings.database_url, autocommit=True, connect_timeout=2) as conn:
                check_environment(conn, settings.database_url, settings.wordloom_env)
            return True
        except DatabaseUnavailable as exc:
            now = time.monotonic()
            if started is None:
                log.warning("waiting for the database", extra={"error": str(exc)})
                started = last_said = now
            elif now - last_said >= settings.db_wait_log_seconds:
                # Keep saying so: a silent worker looks hung (OUTBOX_DB_WAIT_LOG_SECONDS, default 10).
                log.warning(f"still waiting for the database at {where} ({int(now - started)} s)",
                            extra={"error": str(exc)})
                last_said = now
            next_line = settings.db_wait_log_seconds - (time.monotonic() - last_said)
            stopping.wait(max(0.05, min(delay, next_line)))
            delay = min(delay * 2, GUARD_RETRY_CAP_SECONDS)
    return False


GC_GEN0_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """A batch allocates thousands of short-lived objects (rows, documents, spans) that reference
    counting frees; with CPython's default gen-0 threshold (700) the cyclic collector still ran
    about 30 times per 1,000 events and took 8 % of the worker's CPU (measured, docs/BENCHMARKS.md).
    The start-up objects (modules, settings, clients) are frozen out of every collection; the
    gen-0 threshold is raised so collections stay rare, which bounds what cyclic garbage can wait
    for a collection to a few MB."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class ShutdownController:
    """First signal: graceful stop with a deadline.  Second signal or deadline: release and exit."""

    def __init__(self, grace_seconds: float):
        self.grace = grace_seconds
        self.stopping = threading.Event()
        self.runner: Runner | None = None
        self._signals = 0
        self._timer: threading.Thread | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self._signals += 1
        self.stopping.set()
        if self.runner is not None:
            self.runner.stop(hard=self._signals > 1)
        if self._signals == 1:
            log.info("signal received; draining", extra={"signal": signal.Signals(signum).name,
                                                          "grace_seconds": self.grace})
            self._timer = threading.Thread(target=self._deadline, args=(self.grace,), daemon=True, name="grace")
            self._timer.start()
        else:
            threading.Thread(target=self._deadline, args=(0.0,), daemon=True, name="grace-now").start()

    def _deadline(self, seconds: float) -> None:
        runner = self.runner
        if runner is None:
            return
        if runner.closed.wait(seconds):
            return  # drained in time
        runner.hard_stop.set()
        if runner.closed.wait(0.5):  # the loop may notice on its own (it was only sleeping)
            return
        released = runner.release_owned_now()
        log.warning("grace time over; released rows and exiting", extra={"released": released})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(0)


def run_worker(projection: str, environ=None) -> int:
    settings = worker_settings(projection, environ)
    experiments = Experiments.from_mapping(settings.experiments)
    env = Env(environ)
    host = env.str("OUTBOX_METRICS_HOST", "127.0.0.1")
    log.info("worker starting", extra={
        "projection": projection, "worker_id": settings.worker_id, "database": redact(settings.database_url),
        "index": settings.elastic_index if projection == "search" else None,
        "elastic": redact(settings.elastic_url) if projection == "search" else None,
        "batch_size": settings.batch_size, "lease_seconds": settings.lease_seconds,
        "es_mode": ("bulk" if settings.use_es_bulk else "per-event") if projection == "search" else None,
        "pipeline": settings.pipeline,
        "deliver_in_claim": settings.deliver_in_claim if projection == "chronicle" else None,
        "concurrency": 1,
        "experiments": ",".join(experiments.active) or None,
    })
    if settings.concurrency > 1:
        log.warning("OUTBOX_CONCURRENCY is accepted but not used: this process delivers one batch at a time "
                    "(reading the next meanwhile, OUTBOX_PIPELINE); "
                    "start more worker processes to scale out (claims use SKIP LOCKED, each has its own lease)",
                    extra={"outbox_concurrency": settings.concurrency})
    setup_tracing(settings.service_name, environ)
    shutdown = ShutdownController(settings.shutdown_grace)
    shutdown.install()
    if not _guard_environment(settings, shutdown.stopping):
        return 0
    api_port = env.int("API_PORT")
    if api_port and api_port in (settings.metrics_port, settings.http_port):
        raise ConfigError(f"the worker's metrics/health port {api_port} is the API's port (API_PORT); "
                          "set OUTBOX_METRICS_PORT / OUTBOX_HTTP_PORT to another port")
    metrics = OutboxMetrics(projection)
    runner = build_runner(settings, metrics=metrics, experiments=experiments)
    server = HealthServer(runner.health, metrics.registry, host, settings.metrics_port or 0, settings.http_port)
    try:
        ports = server.start()
    except OSError as exc:
        # A busy port is a runtime failure (exit 1), not a usage error (exit 2).
        raise OperatorError(f"{exc} (set OUTBOX_METRICS_PORT / OUTBOX_HTTP_PORT to a free port, or 0)") from None
    log.info("health server listening", extra={"host": host, "metrics_port": ports["metrics"],
                                               "health_port": ports["health"]})
    shutdown.runner = runner
    if shutdown.stopping.is_set():
        runner.stop()
    tune_garbage_collector()
    started = time.monotonic()
    try:
        return runner.run()
    finally:
        server.stop()
        shutdown_tracing()
        log.info("worker exited", extra={"uptime_seconds": round(time.monotonic() - started, 3)})
