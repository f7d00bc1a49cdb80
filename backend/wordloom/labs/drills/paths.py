"""Where drill evidence lives: <base>/<scenario>/<run_id>/ with base
docs/labs/_snapshot/auto/S3A-2A-3A (gitignored), or $WORDLOOM_VAR_DIR/labs/S3A-2A-3A when the
var dir is redirected (tests, the docs runner), or --outdir."""
from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path

from ...envfile import REPO_ROOT
from ...settings import Env

LAB = "S3A-2A-3A"


class NoSuchRun(LookupError):
    pass


def evidence_base(outdir: str | None = None) -> Path:
    if outdir:
        return Path(outdir).resolve()
    var = Env().str("WORDLOOM_VAR_DIR")
    if var:
        return Path(var) / "labs" / LAB
    return REPO_ROOT / "docs" / "labs" / "_snapshot" / "auto" / LAB


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def slug(run_id: str) -> str:
    """The run id as a lowercase identifier fragment (database and index names)."""
    return re.sub(r"[^a-z0-9]+", "_", run_id.lower()).strip("_")[:28] or "run"


def runs(base: Path, scenario: str) -> list[Path]:
    """Run folders of a scenario, oldest first (by the time run started, then name)."""
    folder = base / scenario
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and (p / "_recipe.json").exists()]
    return sorted(found, key=lambda p: (read_json(p / "_recipe.json").get("started_at", ""), p.name))


def find_run(base: Path, scenario: str, run_id: str | None) -> Path:
    if run_id:
        path = base / scenario / run_id
        if not (path / "_recipe.json").exists():
            raise NoSuchRun(f"no run {run_id!r} of {scenario} under {base}")
        return path
    all_runs = runs(base, scenario)
    if not all_runs:
        raise NoSuchRun(f"no run of {scenario} under {base} yet (run `labs run {scenario}` first)")
    return all_runs[-1]


def prune(base: Path, scenario: str, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` run folders; return what was deleted."""
    all_runs = runs(base, scenario)
    doomed = all_runs[: max(0, len(all_runs) - keep_last)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if default is None else default


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
