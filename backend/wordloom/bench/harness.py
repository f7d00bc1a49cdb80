"""One benchmark run: start (or reach) the servers, run every scenario, write the report."""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from elasticsearch import Elasticsearch

from ..envfile import REPO_ROOT
from . import report, scenarios
from .stack import BenchError, BenchStack
from .stats import ratio

log = logging.getLogger("wordloom.bench")


@dataclass
class BenchConfig:
    quick: bool = False
    events: int = 100_000          # 1 KB search events (throughput)
    big_events: int = 20_000       # 20 KB search events
    chronicle_events: int = 100_000
    big_rows: int = 1_000_000      # RSS events and the large rebuild (--big-rows scales them down)
    history_rows: int = 1_000_000  # done rows in the claim+ack history (one INSERT: cheap at any size)
    latency_blocks: int = 2000
    repeat: int = 3
    minor_repeat: int | None = None  # tuned / 20 KB variants; None = repeat (quick mode: 1, to fit a minute)
    latency_rates: list = field(default_factory=lambda: [50, 200, 1000])
    latency_seconds: float = 20.0
    claim_rows: int = 20_000
    scaling_events: int = 30_000
    scaling_workers: list = field(default_factory=lambda: [1, 2, 4])
    rebuild_rows: list = field(default_factory=lambda: [100_000, 1_000_000])
    rss_doc_bytes: int = 256
    fsync: bool = True
    only: list = field(default_factory=list)  # scenario names; empty = all

    @classmethod
    def quick_defaults(cls) -> "BenchConfig":
        return cls(quick=True, events=1500, big_events=200, chronicle_events=2000, big_rows=4000,
                   history_rows=50_000, repeat=3, minor_repeat=1, latency_rates=[50, 200, 1000], latency_seconds=1.5,
                   latency_blocks=600, claim_rows=2000, scaling_events=1000, rebuild_rows=[2000], rss_doc_bytes=256)


# Documented knobs, not product defaults: a bigger batch (OUTBOX_BATCH_SIZE, CONTRACT default 100)
# and tracing off (OTEL_SDK_DISABLED).  Measured to show what the defaults cost, never as the figure.
TUNED_ENV = {"OUTBOX_BATCH_SIZE": "500", "OTEL_SDK_DISABLED": "true"}

SCENARIOS = ("search", "chronicle", "latency", "claim", "rss", "scaling", "rebuild")


def _es_server(url: str) -> str:
    es = Elasticsearch(url, request_timeout=10)
    try:
        v = es.info()["version"]
        return f"{v.get('distribution', 'elasticsearch')} {v.get('number')}"
    except Exception as exc:  # the version is a label; never fail the run over it
        return f"unknown ({type(exc).__name__})"
    finally:
        es.close()


def run(cfg: BenchConfig, *, database_url: str | None = None, elastic_url: str | None = None,
        run_dir: Path | None = None, write_docs: bool = False, command: str = "", out=print) -> dict:
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:4]
    run_dir = Path(run_dir or REPO_ROOT / "var" / "bench" / run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {"run_id": run_id, "started_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "mode": "quick" if cfg.quick else "full", "command": command, "repeat": cfg.repeat,
            "load_start": report.load_average(), "machine": report.machine_info(), "fsync": cfg.fsync,
            "config": asdict(cfg),
            "sizes": (f"search {cfg.events:,} x 1 KB and {cfg.big_events:,} x 20 KB, chronicle {cfg.chronicle_events:,}, "
                      f"done history {cfg.history_rows:,}, RSS {cfg.big_rows:,} events, rebuild {', '.join(f'{n:,}' for n in cfg.rebuild_rows)}")}
    wanted = set(cfg.only or SCENARIOS)
    minor = cfg.minor_repeat or cfg.repeat
    details: dict = {}
    out(f"bench run {run_id} ({meta['mode']}) -> {run_dir}")
    stack = BenchStack.start(run_dir, database_url, elastic_url, fsync=cfg.fsync)
    try:
        meta["postgres_version"] = stack.server_version()
        meta["es_server"] = _es_server(stack.elastic_url)

        def step(name: str, fn):
            if name.split(":")[0] not in wanted:
                return
            t = time.monotonic()
            out(f"  {name} ...")
            details[name.replace(":", "_")] = fn()
            out(f"  {name} done in {time.monotonic() - t:.1f}s")

        step("search:1kb", lambda: scenarios.search_throughput(stack, cfg.events, 1024, cfg.repeat, "1kb"))
        step("search:tuned", lambda: scenarios.search_throughput(
            stack, max(cfg.events // 2, 500), 1024, minor, "tuned", **TUNED_ENV))
        step("search:20kb", lambda: scenarios.search_throughput(stack, cfg.big_events, 20 * 1024, minor, "20kb"))
        step("chronicle", lambda: scenarios.chronicle_throughput(stack, cfg.chronicle_events, cfg.repeat))
        step("latency", lambda: scenarios.latency_at_rates(stack, cfg.latency_rates, cfg.latency_seconds,
                                                                          blocks=cfg.latency_blocks))
        step("claim", lambda: scenarios.claim_growth(stack, cfg.claim_rows, cfg.history_rows, cfg.repeat))
        step("rss", lambda: scenarios.rss_growth(stack, cfg.big_rows, cfg.rss_doc_bytes))
        step("scaling", lambda: scenarios.worker_scaling(stack, cfg.scaling_events, 1024, cfg.scaling_workers, 1))
        if "rebuild" in wanted:
            details["rebuild"] = []
            for n in cfg.rebuild_rows:
                t = time.monotonic()
                out(f"  rebuild {n:,} ...")
                details["rebuild"].append(scenarios.rebuild_vs_bulk(stack, n, 1024, cfg.repeat if n <= 100_000 else 1))
                out(f"  rebuild {n:,} done in {time.monotonic() - t:.1f}s")
    finally:
        stack.stop()
    meta["load_end"] = report.load_average()
    meta["duration_s"] = time.monotonic() - started
    results = summarize(details)
    charts = report.draw_charts(run_dir, details)
    report.write_results(run_dir, results, details, meta)
    table = report.markdown_table(results, details, meta, charts)
    (run_dir / "BENCHMARKS.fragment.md").write_text(table + "\n")
    if write_docs:
        report.update_benchmarks_md(REPO_ROOT / "docs" / "BENCHMARKS.md", table)
    out("")
    out(table)
    out("")
    for t in report.target_verdicts(results):
        out(f"  target {t['verdict']:>12}: {t['label']} (measured {report.f(t['value'], 2)})")
    out(f"results: {run_dir / 'results.json'}")
    return results


def summarize(details: dict) -> dict:
    """The flat numbers of results.json (NaN where a scenario did not run)."""
    nan = math.nan
    s1 = details.get("search_1kb") or {}
    s20 = details.get("search_20kb") or {}
    tuned = details.get("search_tuned") or {}
    ch = details.get("chronicle") or {}
    lat = details.get("latency") or {}
    claim = details.get("claim") or {}
    rss = details.get("rss") or {}
    scale = (details.get("scaling") or {}).get("by_workers") or {}
    rb = details.get("rebuild") or []
    r = {
        "search_events_per_s": s1.get("worker_events_per_s", nan),
        "raw_bulk_docs_per_s": s1.get("raw_bulk_docs_per_s", nan),
        "search_throughput_ratio": s1.get("ratio", nan),
        "raw_bulk_at_batch_docs_per_s": s1.get("raw_bulk_at_batch_docs_per_s", nan),
        "search_throughput_ratio_at_batch": s1.get("ratio_at_batch", nan),
        "search_tuned_events_per_s": tuned.get("worker_events_per_s", nan),
        "search_tuned_throughput_ratio": tuned.get("ratio", nan),
        "search_worker_cpu_ms_per_event": (s1.get("worker_cpu_ms_per_event") or {}).get("total", nan),
        "raw_bulk_cpu_ms_per_doc": (s1.get("raw_cpu_ms_per_doc") or {}).get("total", nan),
        "chronicle_worker_cpu_ms_per_event": (ch.get("worker_cpu_ms_per_event") or {}).get("total", nan),
        "plain_upsert_cpu_ms_per_row": (ch.get("plain_cpu_ms_per_row") or {}).get("total", nan),
        "search_20kb_events_per_s": s20.get("worker_events_per_s", nan),
        "raw_bulk_20kb_docs_per_s": s20.get("raw_bulk_docs_per_s", nan),
        "search_20kb_throughput_ratio": s20.get("ratio", nan),
        "chronicle_events_per_s": ch.get("worker_events_per_s", nan),
        "plain_upsert_rows_per_s": ch.get("plain_upsert_rows_per_s", nan),
        "chronicle_throughput_ratio": ch.get("ratio", nan),
        "chronicle_statement_only_rows_per_s": ch.get("statement_only_rows_per_s", nan),
        "chronicle_statement_only_ratio": ch.get("statement_only_ratio", nan),
        "claim_rate_empty_per_s": claim.get("claim_ack_empty_per_s", nan),
        "claim_rate_history_per_s": claim.get("claim_ack_history_per_s", nan),
        "claim_rate_ratio_1m_history": claim.get("ratio_history", nan),
        "claim_rate_ratio_after_prune": claim.get("ratio_after_prune", nan),
        "history_rows": claim.get("history", nan),
        "prune_rows_per_s": claim.get("prune_rows_per_s", nan),
        "rss_growth_mb": rss.get("rss_growth_mb", nan),
        "rss_peak_mb": rss.get("rss_peak_mb", nan),
        "rss_events": rss.get("events", nan),
        "rebuild_ratio": rb[0]["ratio"] if rb else nan,
        "rebuild_docs_per_s": rb[0]["rebuild_docs_per_s"] if rb else nan,
    }
    # The search worker's ceiling from the queue's own cost (claim+ack alone, measured in the claim
    # scenario): claiming, delivering and acking one batch after another reaches at best
    # 1 / (1/claim_rate + 1/raw_rate), whatever its sink costs.  (The chronicle worker's ceiling is
    # measured directly: chronicle_statement_only_ratio.)
    claim_rate = claim.get("claim_ack_empty_per_s", nan)
    r["search_ratio_ceiling_sequential"] = ratio(1 / (1 / claim_rate + 1 / r["raw_bulk_docs_per_s"]),
                                                 r["raw_bulk_docs_per_s"]) if claim else nan
    for rate_, x in lat.items():
        for p in ("p50", "p95", "p99"):
            r[f"latency_{p}_ms_{rate_}"] = x[f"latency_{p}_ms"]
        r[f"latency_achieved_rate_{rate_}"] = x["achieved_rate"]
    for key in ("latency_p50_ms_200", "latency_p99_ms_200"):
        r.setdefault(key, nan)
    for k, x in scale.items():
        r[f"search_events_per_s_{k}_workers"] = x["events_per_s"]
    for x in rb:
        r[f"rebuild_ratio_{x['rows']}"] = x["ratio"]
    return r


__all__ = ["BenchConfig", "BenchError", "run", "summarize"]
