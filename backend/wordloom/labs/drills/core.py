"""The drill machinery shared by every scenario: the run context, checks, run and verify."""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ...db.connect import DatabaseUnavailable, connect
from ...redact import redact
from . import environment as envmod
from . import state as statemod
from .paths import new_run_id, read_json, write_json
from .procs import ProcessFailed, WorkerProc, free_port, log_records, metric_sum, parse_metrics, worker_env


class RunAborted(RuntimeError):
    pass


@dataclass
class Check:
    name: str
    observed: object
    expected: str
    ok: bool


class Scenario:
    name = ""
    summary = ""           # one line: what it injects
    checks_summary = ""    # one line: what verify checks
    private = None         # "es" | "pg": the drill must stop that server, so it runs its own
    default_workers = 1

    def run(self, ctx: "RunContext") -> None:  # pragma: no cover - override
        raise NotImplementedError

    def checks(self, v: "VerifyContext") -> list[Check]:  # pragma: no cover - override
        raise NotImplementedError

    def figures(self, v: "VerifyContext") -> dict:
        s = v.state["outbox"]["search"]["status"]
        return {"events": v.evidence.get("events", 0), "done": s.get("done", 0), "failed": s.get("failed", 0),
                "retries": int(v.after("outbox_retry_scheduled_total"))}


class RunContext:
    def __init__(self, scenario: Scenario, args, run_dir: Path, run_id: str, target: envmod.Target):
        self.scenario, self.args, self.run_dir, self.run_id, self.target = scenario, args, run_dir, run_id, target
        self.base_env = dict(os.environ)
        self.workers: dict[str, WorkerProc] = {}
        self.evidence: dict = {"timeline": []}
        self.private: envmod.PrivateServers | None = None
        self._t0 = time.monotonic()
        self._next_port = args.metrics_port or 0

    # -- evidence ----------------------------------------------------------------------------------
    def note(self, what: str, **data) -> None:
        self.evidence["timeline"].append({"t": round(time.monotonic() - self._t0, 3), "what": what, **data})

    def db(self):
        return connect(self.target.database_url, autocommit=True, connect_timeout=5)

    def scalar(self, sql: str, params=None):
        with self.db() as conn:
            return conn.execute(sql, params).fetchone()[0]

    # -- workers -------------------------------------------------------------------------------------
    def _port(self) -> int:
        if self._next_port:
            port, self._next_port = self._next_port, self._next_port + 1
            return port
        return free_port()

    def start_worker(self, name: str, projection: str = "search", knobs: dict | None = None, *,
                     ready: bool = True, database_url: str | None = None) -> WorkerProc:
        port = self._port()
        env = worker_env(self.base_env, database_url=database_url or self.target.database_url,
                         elastic_url=self.target.elastic_url, index=self.target.index, env_name=self.target.env_name,
                         worker_id=f"lab-{self.run_id}-{name}", port=port, var_dir=self.run_dir / "var",
                         knobs=knobs)
        worker = WorkerProc(name, projection, env, self.run_dir / "logs" / f"worker-{name}.log", port).start()
        self.workers[name] = worker
        self.note("worker started", worker=name, pid=worker.pid, knobs=sorted((knobs or {}).items()))
        if ready:
            worker.wait_ready()
            worker.scrape(self.run_dir / "metrics" / f"before-{name}.prom")
        return worker

    def scrape_after(self, *names: str) -> None:
        for name in names or list(self.workers):
            w = self.workers[name]
            if w.alive():
                w.scrape(self.run_dir / "metrics" / f"after-{name}.prom")

    def stop_workers(self) -> None:
        for w in self.workers.values():
            if w.alive():
                w.stop()

    # -- waiting -------------------------------------------------------------------------------------
    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except DatabaseUnavailable:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise RunAborted(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(interval)

    def owed(self) -> int:
        """Rows still owed by either outbox (pending + processing)."""
        with self.db() as conn:
            return sum(conn.execute(f"SELECT count(*) FROM {t} WHERE status IN ('pending', 'processing')").fetchone()[0]
                       for t in ("search_outbox_events", "chronicle_outbox_events"))

    def wait_drained(self, timeout: float | None = None) -> None:
        self.wait_for(lambda: self.owed() == 0, timeout or self.args.drain_timeout, "the outboxes to drain")
        self.note("drained")


class VerifyContext:
    def __init__(self, run_dir: Path, recipe: dict, evidence: dict, state: dict, state_source: str):
        self.run_dir, self.recipe, self.evidence, self.state, self.state_source = run_dir, recipe, evidence, state, state_source
        self.metrics = {}
        for path in sorted((run_dir / "metrics").glob("*.prom")):
            stage, _, worker = path.stem.partition("-")
            self.metrics.setdefault(stage, {})[worker] = parse_metrics(path.read_text(encoding="utf-8"))

    def after(self, name: str, worker: str | None = None, **labels) -> float:
        scraped = self.metrics.get("after", {})
        return sum(metric_sum(s, name, **labels) for w, s in scraped.items() if worker in (None, w))

    def logs(self, worker: str) -> list[dict]:
        return log_records(self.run_dir / "logs" / f"worker-{worker}.log")

    def convergence(self, exclude=frozenset()) -> dict:
        return statemod.convergence(self.state, set(exclude))


# -- common checks -----------------------------------------------------------------------------------
def check_drained(v: VerifyContext, projections=("search",)) -> Check:
    owed = {p: {k: n for k, n in v.state["outbox"][p]["status"].items() if k in ("pending", "processing")}
            for p in projections}
    return Check("outbox_drained", owed, "no pending or processing rows", not any(owed.values()))


def check_none_failed(v: VerifyContext, projection: str = "search") -> Check:
    failed = v.state["outbox"][projection]["failed_reasons"]
    return Check(f"{projection}_none_failed", failed, "no failed rows", not failed)


def check_converged(v: VerifyContext, exclude=frozenset()) -> Check:
    c = v.convergence(exclude)
    ok = c["rows"] > 0 and not (c["missing_count"] or c["stale_count"] or c["orphan_count"])
    return Check("es_matches_search_index", c,
                 "every search_index row has its document at the same version; no document without a row", ok)


def check_deletes_applied(v: VerifyContext) -> Check:
    present = [k for k in v.state["deleted"] if k in v.state["es"]]
    return Check("deleted_entities_have_no_document", {"deleted": len(v.state["deleted"]), "still_indexed": present[:10]},
                 "no document for a deleted entity", not present)


def check_events(v: VerifyContext, minimum: int = 1) -> Check:
    n = v.evidence.get("events", 0)
    return Check("load_produced", n, f">= {minimum} events", n >= minimum)


# -- run -------------------------------------------------------------------------------------------------
def prepare_target(ctx_dir: Path, run_id: str, scenario: Scenario, private: envmod.PrivateServers) -> envmod.Target:
    db_url, es_url, base_index, env_name = envmod.configured()
    if scenario.private == "es":
        es_url = private.start_elastic()
    else:
        envmod.check_elastic(es_url)
    if scenario.private == "pg":
        db_url = private.start_postgres()
    db_name, index = envmod.lab_names(run_id, base_index, env_name)
    lab_url = envmod.create_lab_database(db_url, db_name, env_name)
    return envmod.Target(db_url, lab_url, es_url, index, env_name)


def recipe_args(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("env_file",) and not callable(v)}


def run_drill(scenario: Scenario, args, base: Path, out=sys.stdout) -> tuple[int, Path]:
    from . import EXIT_ENVIRONMENT, EXIT_OK, EXIT_RUN_ABORTED

    run_id = args.run_id or new_run_id()
    run_dir = base / scenario.name / run_id
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    recipe = {"scenario": scenario.name, "run_id": run_id, "lab": "S3A-2A-3A", "summary": scenario.summary,
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "started_unix": time.time(),
              "status": "starting", "args": recipe_args(args), "env_file": args.env_file,
              "argv": [redact(a) for a in sys.argv], "private_server": scenario.private}
    write_json(run_dir / "_recipe.json", recipe)
    private = envmod.PrivateServers(run_dir)
    ctx = None
    code = EXIT_OK
    try:
        target = prepare_target(run_dir, run_id, scenario, private)
        recipe.update(target=target.as_recipe(), lab_database=target.database_url.rsplit("/", 1)[-1], status="running")
        write_json(run_dir / "_recipe.json", recipe)
        ctx = RunContext(scenario, args, run_dir, run_id, target)
        ctx.private = private
        scenario.run(ctx)
        ctx.scrape_after()
        recipe["status"] = "completed"
    except envmod.EnvironmentMissing as exc:
        recipe.update(status="environment_missing", error=redact(str(exc)))
        code = EXIT_ENVIRONMENT
    except (RunAborted, ProcessFailed, DatabaseUnavailable) as exc:
        recipe.update(status="aborted", error=redact(str(exc)))
        code = EXIT_RUN_ABORTED
    finally:
        if ctx is not None:
            ctx.stop_workers()
            try:
                write_json(run_dir / "final_state.json", statemod.collect(ctx.target.database_url, ctx.target.elastic_url,
                                                                          ctx.target.index))
            except Exception as exc:  # the state is evidence, not a reason to hide the run's own error
                recipe["final_state_error"] = redact(str(exc))[:300]
            write_json(run_dir / "evidence.json", ctx.evidence)
            write_json(run_dir / "workers.json", [w.summary() for w in ctx.workers.values()])
        private.stop()
        for name in ("private-es", "private-pg"):  # server data is not evidence; its log stays
            shutil.rmtree(run_dir / name, ignore_errors=True)
        recipe.update(finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      duration_seconds=round(time.time() - recipe["started_unix"], 3))
        write_json(run_dir / "_recipe.json", recipe)
    print(f"{scenario.name} run {run_id}: {recipe['status']}" + (f" ({recipe['error']})" if recipe.get("error") else ""),
          file=out)
    print(f"evidence: {run_dir}", file=out)
    return code, run_dir


# -- verify ----------------------------------------------------------------------------------------------
def load_state(run_dir: Path, recipe: dict) -> tuple[dict, str]:
    recorded = read_json(run_dir / "final_state.json")
    if recipe.get("private_server") or not recipe.get("lab_database"):
        return recorded, "recorded"
    try:
        db_url, es_url, _, _ = envmod.configured()
    except envmod.EnvironmentMissing:
        return recorded, "recorded"
    if not envmod.lab_database_exists(db_url, recipe["lab_database"]):
        return recorded, "recorded"
    try:
        return statemod.collect(envmod.with_database(db_url, recipe["lab_database"]), es_url,
                                recipe["target"]["index"]), "live"
    except Exception:
        return recorded, "recorded"


def verify_run(scenario: Scenario, run_dir: Path) -> dict:
    recipe = read_json(run_dir / "_recipe.json")
    state, source = load_state(run_dir, recipe)
    v = VerifyContext(run_dir, recipe, read_json(run_dir / "evidence.json"), state, source)
    checks = [Check("run_completed", recipe.get("status"), "completed", recipe.get("status") == "completed")]
    if state:
        try:
            checks += scenario.checks(v)
            figures = scenario.figures(v)
        except (KeyError, TypeError, ValueError) as exc:
            checks.append(Check("evidence_readable", repr(exc), "complete evidence", False))
            figures = {}
    else:
        checks.append(Check("state_available", None, "final_state.json or a live lab database", False))
        figures = {}
    result = {"scenario": scenario.name, "run_id": recipe.get("run_id"), "ok": all(c.ok for c in checks),
              "state_source": source, "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "figures": figures, "checks": [asdict(c) for c in checks]}
    write_json(run_dir / "_result.json", result)
    return result
