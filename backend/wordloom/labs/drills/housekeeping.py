"""export (traces into the run folder), clean (take back what runs changed) and report (one table)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ...observability import jaeger_export as jx
from ...redact import redact
from . import environment as envmod
from .paths import prune, read_json, runs
from .procs import pid_is_drill_worker

SERVICES = ("wordloom-search-outbox-worker", "wordloom-chronicle-outbox-worker")


def export_run(run_dir: Path, jaeger_url: str | None, lookback: str | None, limit: int) -> tuple[list[Path], str]:
    """Jaeger query API first; the run's own local span files when Jaeger cannot be reached."""
    recipe = read_json(run_dir / "_recipe.json")
    if not lookback:
        age = time.time() - float(recipe.get("started_unix") or time.time())
        lookback = f"{int(age) + 300}s"
    outdir = run_dir / "_exports"
    local = jx.LocalSpans(run_dir / "var" / "traces")
    source, label = (jx.JaegerApi(jaeger_url), "jaeger") if jaeger_url else (local, "local")
    paths: list[Path] = []
    for service in SERVICES:  # one folder per service, the contract's three file names in each
        q = jx.Query(service=service, lookback=lookback, limit=limit)
        try:
            paths += jx.export(source, q, outdir / service)
        except jx.JaegerUnavailable:
            source, label = local, "local (Jaeger unreachable)"
            paths += jx.export(source, q, outdir / service)
    return paths, label


def _kill_leftovers(run_dir: Path) -> list[int]:
    killed = []
    run_id = read_json(run_dir / "_recipe.json").get("run_id", "")
    for w in read_json(run_dir / "workers.json", []):
        pid = w.get("pid")
        if not pid or not pid_is_drill_worker(pid):
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"OUTBOX_WORKER_ID=lab-{run_id}-".encode() in environ:
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def clean_runs(base: Path, scenario: str, keep_last: int) -> list[str]:
    """Drop every run's drill database and index, stop leftover workers, prune folders to keep_last."""
    lines = []
    try:
        db_url, es_url, _, _ = envmod.configured()
    except envmod.EnvironmentMissing:
        db_url = es_url = None
    for run_dir in runs(base, scenario):
        recipe = read_json(run_dir / "_recipe.json")
        killed = _kill_leftovers(run_dir)
        dropped_db = dropped_index = False
        if db_url and recipe.get("lab_database") and recipe.get("private_server") != "pg":
            dropped_db = envmod.drop_lab_database(db_url, recipe["lab_database"])
        index = (recipe.get("target") or {}).get("index")
        if es_url and index and recipe.get("private_server") != "es":
            dropped_index = envmod.delete_index(es_url, index)
        if killed or dropped_db or dropped_index:
            lines.append(f"{scenario}/{run_dir.name}: database dropped={dropped_db} index deleted={dropped_index} "
                         f"workers stopped={killed}")
    for path in prune(base, scenario, keep_last):
        lines.append(f"{scenario}/{path.name}: evidence removed (keep-last {keep_last})")
    return [redact(line) for line in lines]


def report_rows(base: Path, scenarios) -> list[dict]:
    rows = []
    for name in scenarios:
        found = runs(base, name)
        if not found:
            rows.append({"scenario": name, "run": "-", "ok": "-", "figures": ""})
            continue
        run_dir = found[-1]
        result = read_json(run_dir / "_result.json")
        ok = "not verified" if not result else ("yes" if result.get("ok") else "NO")
        figures = ", ".join(f"{k}={v}" for k, v in (result.get("figures") or {}).items())
        failed = [c["name"] for c in result.get("checks", []) if not c.get("ok")]
        if failed:
            figures += f"; failed: {', '.join(failed)}"
        rows.append({"scenario": name, "run": run_dir.name, "ok": ok, "figures": figures})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| scenario | last run | ok | key figures |", "|---|---|---|---|"]
    lines += [f"| {r['scenario']} | {r['run']} | {r['ok']} | {r['figures'].replace('|', '/')} |" for r in rows]
    return "\n".join(lines) + "\n"
