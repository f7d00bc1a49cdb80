"""The workers' Prometheus metrics: names and labels of CONTRACT.md section 3, kept exactly.

Each worker owns a CollectorRegistry (not the process-global default), so two runners in one test
process, or a worker next to the API's own metrics, never collide.  Series that dashboards divide
or alert on are created up front at 0, so `rate()` works before the first event.
outbox_produced_total belongs to the write path (wordloom.observability.api_metrics), not here.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .retry import TERMINAL_REASONS, TRANSIENT_REASONS

PROJECTIONS = ("search", "chronicle")
OPS = ("upsert", "delete")
# projection_status names of CONTRACT.md section 1, by worker projection label.
REBUILD_NAMES = {
    "search": ("search_sot_to_search_index", "search_index_to_elastic"),
    "chronicle": ("chronicle_events_to_entries",),
}
# Label values created at 0 on startup, so every contract series is scraped before the first event
# (sum/rate panels show 0 instead of "no data").  Reasons a projection can never produce are left out.
_NOT_ES_REASONS = {"deterministic_exception", "unknown_exception", "unknown_op", "reclaim_exhausted"}
PRIMED_REASONS = {
    "search": (TRANSIENT_REASONS, TERMINAL_REASONS),
    "chronicle": (TRANSIENT_REASONS & _NOT_ES_REASONS, TERMINAL_REASONS & _NOT_ES_REASONS),
}
PRIMED_NOOP_REASONS = {"search": ("es_404", "es_409"), "chronicle": ("unchanged", "absent")}
PRIMED_BULK_RESULTS = ("ok", "errors")
PRIMED_ITEM_RESULTS = ("ok", "noop", "failed")
PRIMED_ITEM_FAILURES = ("es_429", "es_4xx", "es_5xx", "es_other")


class OutboxMetrics:
    def __init__(self, projection: str, registry: CollectorRegistry | None = None):
        self.projection = projection
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.processed = Counter("outbox_processed_total", "Outbox rows delivered (done)",
                                 ["projection", "op"], registry=r)
        self.failed = Counter("outbox_failed_total", "Failed delivery attempts (retried or terminal)",
                              ["projection", "op", "reason"], registry=r)
        self.retry_scheduled = Counter("outbox_retry_scheduled_total", "Rows sent back to pending with a delay",
                                       ["projection", "op", "reason"], registry=r)
        self.terminal_failed = Counter("outbox_terminal_failed_total", "Rows moved to failed",
                                       ["projection", "op", "reason"], registry=r)
        self.idempotent_noop = Counter("outbox_idempotent_noop_total",
                                       "Deliveries that found the target already at or past this state",
                                       ["projection", "op", "reason"], registry=r)
        self.owner_mismatch = Counter("outbox_owner_mismatch_skips_total",
                                      "Acks skipped because the row's lease was no longer ours",
                                      ["projection"], registry=r)
        self.lag = Gauge("outbox_lag_events", "Rows still owed: pending + processing (failed excluded)",
                         ["projection"], registry=r)
        self.oldest_age = Gauge("outbox_oldest_age_seconds", "Age of the oldest pending/processing row",
                                ["projection"], registry=r)
        self.inflight = Gauge("outbox_inflight_events", "Rows in processing", ["projection"], registry=r)
        self.stuck = Gauge("outbox_stuck_processing_events", "Processing rows whose lease expired",
                           ["projection"], registry=r)
        self.failed_events = Gauge("outbox_failed_events", "Rows in failed (waiting for a replay)",
                                   ["projection"], registry=r)
        self.last_success = Gauge("outbox_last_success_timestamp_seconds", "Unix time of the last delivered row",
                                  ["projection"], registry=r)
        self.rebuild_duration = Gauge("projection_rebuild_duration_seconds", "Duration of the last rebuild",
                                      ["projection"], registry=r)
        self.rebuild_last_finished = Gauge("projection_rebuild_last_finished_timestamp_seconds",
                                           "Unix time the last rebuild finished", ["projection"], registry=r)
        self.rebuild_last_success = Gauge("projection_rebuild_last_success", "1 if the last rebuild succeeded",
                                          ["projection"], registry=r)
        self.bulk_requests = Counter("outbox_es_bulk_requests_total", "Elasticsearch _bulk requests",
                                     ["projection", "result"], registry=r)
        self.bulk_items = Counter("outbox_es_bulk_items_total", "Items of _bulk requests by outcome",
                                  ["projection", "op", "result"], registry=r)
        self.bulk_item_failures = Counter("outbox_es_bulk_item_failures_total", "Failed _bulk items by class",
                                          ["projection", "op", "failure_class"], registry=r)
        self.bulk_duration = Histogram("outbox_es_bulk_request_duration_seconds", "Duration of _bulk requests",
                                       ["projection"], registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.backlog_growing = Gauge("outbox_backlog_stalled", "1 while the backlog grows and nothing is delivered",
                                     ["projection"], registry=r)
        self._prime()

    def _prime(self) -> None:
        p = self.projection
        for gauge in (self.lag, self.oldest_age, self.inflight, self.stuck, self.failed_events, self.last_success,
                      self.backlog_growing):
            gauge.labels(projection=p)
        self.owner_mismatch.labels(projection=p)
        transient, terminal = PRIMED_REASONS.get(p, (TRANSIENT_REASONS, TERMINAL_REASONS))
        for op in OPS:
            self.processed.labels(projection=p, op=op)
            for reason in sorted(transient | terminal):
                self.failed.labels(projection=p, op=op, reason=reason)
            for reason in sorted(transient):
                self.retry_scheduled.labels(projection=p, op=op, reason=reason)
            for reason in sorted(terminal):
                self.terminal_failed.labels(projection=p, op=op, reason=reason)
            for reason in PRIMED_NOOP_REASONS.get(p, ()):
                self.idempotent_noop.labels(projection=p, op=op, reason=reason)
        for name in REBUILD_NAMES.get(p, ()):
            # Until the monitor has read projection_status (and for a projection never rebuilt):
            # last_success 1 (no failed rebuild), last_finished 0 (never), duration 0.  So the
            # `projection_rebuild_last_success == 0` alert means "the last rebuild failed" only.
            self.set_rebuild(name, None, None, None)
        if p == "search":  # the chronicle worker never talks to Elasticsearch
            self.bulk_duration.labels(projection=p)
            for result in PRIMED_BULK_RESULTS:
                self.bulk_requests.labels(projection=p, result=result)
            for op in OPS:
                for result in PRIMED_ITEM_RESULTS:
                    self.bulk_items.labels(projection=p, op=op, result=result)
                for failure in PRIMED_ITEM_FAILURES:
                    self.bulk_item_failures.labels(projection=p, op=op, failure_class=failure)

    # -- helpers that keep label spelling in one place ---------------------------------------------
    def count_done(self, op: str, n: int = 1) -> None:
        if n:
            self.processed.labels(projection=self.projection, op=op).inc(n)

    def count_noop(self, op: str, reason: str, n: int = 1) -> None:
        self.idempotent_noop.labels(projection=self.projection, op=op, reason=reason).inc(n)

    def count_failure(self, op: str, reason: str, terminal: bool) -> None:
        self.failed.labels(projection=self.projection, op=op, reason=reason).inc()
        target = self.terminal_failed if terminal else self.retry_scheduled
        target.labels(projection=self.projection, op=op, reason=reason).inc()

    def count_owner_mismatch(self, n: int) -> None:
        if n:
            self.owner_mismatch.labels(projection=self.projection).inc(n)

    def set_backlog(self, stats) -> None:
        p = self.projection
        self.lag.labels(projection=p).set(stats.lag)
        self.oldest_age.labels(projection=p).set(stats.oldest_age_seconds)
        self.inflight.labels(projection=p).set(stats.inflight)
        self.stuck.labels(projection=p).set(stats.stuck)
        self.failed_events.labels(projection=p).set(stats.failed)

    def set_rebuild(self, name: str, finished_at: float | None, duration: float | None,
                    success: bool | None) -> None:
        """The rebuild gauges of one projection_status row (`name`).  finished_at None: no rebuild
        has finished yet, exported as last_finished 0, duration 0 and last_success 1."""
        if finished_at is None:
            finished_at, duration, success = 0.0, 0.0, True
        self.rebuild_last_finished.labels(projection=name).set(finished_at)
        self.rebuild_duration.labels(projection=name).set(duration or 0.0)
        self.rebuild_last_success.labels(projection=name).set(1 if success else 0)

    def value(self, name: str, **labels) -> float:
        """Current sample value (0 when absent); for tests and the health page."""
        v = self.registry.get_sample_value(name, labels)
        return 0.0 if v is None else v
