"""Shared helpers for the entry-path tests: the registry, subprocess runs, copies of the tree."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "backend" / "scripts"
REGISTRY = json.loads((SCRIPTS / "registry.json").read_text(encoding="utf-8"))
ENTRIES = {e["path"]: e for e in REGISTRY["entries"]}
VENV_PY = Path(sys.executable)


def command_module(path: str) -> str | None:
    """The wordloom.commands module an entry path ends up running (None for the cli router)."""
    target = ENTRIES[path]["target"]
    if target.startswith("wordloom.commands."):
        return target.split(".")[-1]
    if target in ENTRIES:
        return command_module(target)
    return None


def module_missing(module: str | None) -> bool:
    if module is None:
        return False
    sys.path.insert(0, str(REPO / "backend"))
    try:
        return importlib.util.find_spec(f"wordloom.commands.{module}") is None
    finally:
        sys.path.pop(0)


def param(path: str, *extra):
    """pytest.param for an entry: xfail (not strict) only while its command module is missing."""
    module = command_module(path)
    marks = [pytest.mark.xfail(module_missing(module), reason="command not built yet", strict=False)]
    return pytest.param(path, *extra, id=path, marks=marks)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a person's shell: no activated venv, no honcho, no test-run PYTHONPATH."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("HONCHO_", "PYTHON", "WORDLOOM_", "VIRTUAL_ENV", "OUTBOX_"))
        and k not in ("DATABASE_URL", "ELASTIC_URL", "ELASTIC_INDEX", "API_PORT", "API_HOST")
    }
    env.update(extra)
    return env


def run(cmd, cwd=REPO, env=None, input=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env if env is not None else clean_env(), input=input,
        capture_output=True, timeout=timeout,
    )


def copy_tree(dest: Path) -> Path:
    """A copy of the parts a launcher or shim needs, as a separate "clone" at `dest` (no venv)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SCRIPTS, dest / "backend" / "scripts", ignore=ignore)
    shutil.copytree(REPO / "backend" / "wordloom", dest / "backend" / "wordloom", ignore=ignore)
    for name in (".env.dev", ".env.test"):
        shutil.copy2(REPO / name, dest / name)
    return dest


def system_python() -> Path | None:
    """A real interpreter outside the venv that lacks the project's dependencies, if there is one."""
    base = Path(getattr(sys, "_base_executable", "") or "")
    for candidate in (base, Path(sys.base_prefix) / "bin" / "python3"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            probe = subprocess.run([str(candidate), "-I", "-c", "import psycopg"], capture_output=True)
            if probe.returncode != 0:
                return candidate.resolve()
    return None
