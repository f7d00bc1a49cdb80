"""The one forwarding helper behind every Python entry path under backend/scripts/.

A shim is two lines: put backend/ on sys.path, then `forward(__file__)`.  Everything else lives
here, so every entry path behaves alike (DESIGN.md "The scripts tree and the legacy fence"):

- the shim's row in registry.json says what it forwards to and whether it is deprecated;
- argv, stdin/stdout and the exit code pass through untouched; only a deprecated path adds ONE
  hint line on stderr (plain print, not `warnings`, so `python -W error` cannot turn it into a
  crash: C28);
- it works from any working directory and with any interpreter: when the one running lacks the
  project's dependencies it re-executes itself with the project's virtual environment, or says
  `make setup` in one line.

Only the standard library is used here: this module must run under a bare system python3.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import sys

SCRIPTS_DIR = os.path.dirname(os.path.realpath(__file__))
BACKEND_DIR = os.path.dirname(SCRIPTS_DIR)
REPO_ROOT = os.path.dirname(BACKEND_DIR)
REGISTRY_PATH = os.path.join(SCRIPTS_DIR, "registry.json")

# Importable names that prove an interpreter has the project installed.  find_spec only looks.
REQUIRED_MODULES = ("psycopg", "dotenv")
# Where `make setup` (and v3's WSL habits) put the virtual environment, in search order.
VENV_DIRS = (".venv", os.path.join("backend", ".venv"), os.path.join("backend", ".venv_linux"))
# Set before re-executing so a venv that is itself broken cannot make us loop.
REEXEC_MARK = "WORDLOOM_FORWARD_REEXEC"

_typed_path: str | None = None


def entry_path() -> str:
    """The path the person typed (first shim of this process), else this process's argv[0]."""
    return _typed_path or sys.argv[0]


def load_registry(path: str = REGISTRY_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def repo_relative(path: str) -> str:
    return os.path.relpath(os.path.realpath(path), REPO_ROOT).replace(os.sep, "/")


def registry_entry(shim_file: str, registry: dict | None = None) -> dict:
    key = repo_relative(shim_file)
    for entry in (registry or load_registry())["entries"]:
        if entry["path"] == key:
            return entry
    # A shim that is not registered is a bug in this tree, not in the person's command.
    raise SystemExit(f"{key}: not listed in backend/scripts/registry.json (fix the registry)")


def deprecation_hint(entry: dict, typed: str) -> str:
    return (
        f"[deprecated] {typed} is an old path: use {entry['replacement']} instead "
        f"(this path will be removed on {entry['removal']})"
    )


def _missing_modules() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def _venv_python(root: str = REPO_ROOT) -> tuple[str | None, str | None]:
    """(usable venv python, Windows-made venv seen) for the project's venv locations."""
    windows = None
    for rel in VENV_DIRS:
        venv = os.path.join(root, rel)
        python = os.path.join(venv, "bin", "python")
        if os.access(python, os.X_OK):
            return python, windows
        if windows is None and os.path.isfile(os.path.join(venv, "Scripts", "python.exe")):
            windows = venv
    return None, windows


def ensure_dependencies() -> None:
    """Re-exec with the project venv when this interpreter cannot import the project's deps."""
    missing = _missing_modules()
    if not missing:
        return
    python, windows = _venv_python()
    same = python and os.path.realpath(sys.prefix) == os.path.realpath(os.path.dirname(os.path.dirname(python)))
    if python and not same and not os.environ.get(REEXEC_MARK):
        os.environ[REEXEC_MARK] = "1"
        # Keep the interpreter options the person gave (-W error must stay in force: C28).
        flags = [f"-W{w}" for w in sys.warnoptions]
        flags += [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in getattr(sys, "_xoptions", {}).items()]
        sys.stdout.flush()
        os.execv(python, [python, *flags, *sys.argv])
    where = f" ({windows} was made on Windows and cannot run here)" if windows else ""
    print(
        f"{entry_path()}: {sys.executable} cannot import {', '.join(missing)}{where}; "
        f"run `make setup` in {REPO_ROOT} (or activate its .venv)",
        file=sys.stderr,
    )
    raise SystemExit(1)


def bootstrap(typed: str | None = None) -> None:
    """What every entry needs before touching wordloom: deps, backend/ importable, argv[0] typed.

    `typed` names the entry when it is not argv[0] (a bash launcher that exec'd _launch.py)."""
    global _typed_path
    if typed:
        _typed_path = typed
    elif _typed_path is None:
        _typed_path = sys.argv[0]
    ensure_dependencies()
    if BACKEND_DIR not in sys.path:
        sys.path.insert(0, BACKEND_DIR)
    # runpy.run_path sets argv[0] to the file it runs; the person typed something else (C27).
    sys.argv[0] = _typed_path


def command_exists(module: str) -> bool:
    return importlib.util.find_spec(f"wordloom.commands.{module}") is not None


def run_command(module: str, argv: list[str], fixed: dict[str, str] | None = None) -> int:
    """Run wordloom.commands.<module> under the typed path; a command not built yet is one line.

    This is all an implementation file under legacy does after mapping its old flags."""
    bootstrap()
    try:
        from wordloom.commands.base import run_command as run
    except ModuleNotFoundError as exc:  # pragma: no cover - broken install
        raise SystemExit(f"{entry_path()}: cannot import wordloom ({exc}); run `make setup`") from None
    if not command_exists(module):
        print(f"{entry_path()}: command wordloom.commands.{module} is not part of this checkout", file=sys.stderr)
        return 1
    return run(module, argv, prog=entry_path(), fixed=fixed)


def forward(shim_file: str, registry: dict | None = None) -> None:
    """Run the registered target of `shim_file` as __main__; never returns (SystemExit)."""
    entry = registry_entry(shim_file, registry)
    bootstrap()
    if entry["kind"] == "deprecated":
        print(deprecation_hint(entry, entry_path()), file=sys.stderr)
    target = entry["target"]
    if ":" in target:
        # A callable `package.module:function(argv, prog)` (the cli.py router).
        module_name, func_name = target.split(":", 1)
        func = getattr(importlib.import_module(module_name), func_name)
        raise SystemExit(func(sys.argv[1:], prog=entry_path()))
    runpy.run_path(os.path.join(REPO_ROOT, target), run_name="__main__")
    raise SystemExit(0)
