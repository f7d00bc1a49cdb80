"""Reading `.env.*` files the same way everywhere (launchers, cli.py, tests).

Env files are read by python-dotenv, never `source`d by a shell: a UTF-8 BOM or CRLF line endings
(a file saved on Windows) must not leave `\\ufeff` or `\\r` inside a name or value (C21, C22).
By default variables already exported in the process win over the file (`override=False`), the
rule every launcher and command documents; `override=True` lets the file win.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parents[2]
# Names this process took from an env file (comma-separated), so settings can tell an exported
# variable from a file default when two names compete (settings.Env.first_set).
FROM_FILE_MARKER = "_WORDLOOM_FROM_ENV_FILE"


class EnvFileNotFound(FileNotFoundError):
    def __init__(self, name: str, tried: list[Path]):
        self.name = name
        self.tried = tried
        super().__init__(f"env file not found: {name} (tried: {', '.join(str(p) for p in tried)})")


def resolve_env_file(name: str | os.PathLike, cwd: Path | None = None) -> Path:
    """Find the file the person meant: as given (absolute, or relative to the working directory),
    then relative to the repo root.  Raises EnvFileNotFound listing every path tried (C26)."""
    p = Path(name)
    if p.is_absolute():
        tried = [p]
    else:
        tried = [(cwd or Path.cwd()) / p, REPO_ROOT / p]
    for candidate in tried:
        if candidate.is_file():
            return candidate.resolve()
    raise EnvFileNotFound(str(name), tried)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file into a dict, tolerant of a BOM and of CRLF endings."""
    raw = Path(path).read_bytes().decode("utf-8-sig")
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    values = dotenv_values(stream=io.StringIO(text))
    return {k: ("" if v is None else v) for k, v in values.items()}


def load_env_file(path: Path, *, override: bool = False, environ: dict | None = None) -> dict[str, str]:
    """Apply an env file to `environ` (os.environ by default).  Returns what was applied.

    With override=False a variable that is already set *and non-empty* keeps its value; an empty
    exported value counts as unset (C23), so `export ELASTIC_URL=` cannot blank the file's value.
    """
    env = os.environ if environ is None else environ
    applied: dict[str, str] = {}
    for key, value in read_env_file(path).items():
        if not override and env.get(key):
            continue
        env[key] = value
        applied[key] = value
    if applied:
        known = {k for k in env.get(FROM_FILE_MARKER, "").split(",") if k}
        env[FROM_FILE_MARKER] = ",".join(sorted(known | set(applied)))
    return applied
