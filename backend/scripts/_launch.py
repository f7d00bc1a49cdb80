"""Python half of the run_*.sh launchers (bash finds the env file and the interpreter, then execs this).

Usage (internal): _launch.py run|check TYPED_PATH LAUNCHER ENV_PATH WAIT_DB MODULE [command args...]

Why this is Python and not bash:
- the env file is read by python-dotenv (BOM/CRLF safe) through the command's own `--env-file`;
- honcho injects every variable of the `.env` in its working directory into each process.  A stray
  `.env` (say a poisoned DATABASE_URL) would then beat `.env.test`, because exported values win
  over the file.  Those injected values are not the person's exports, so they are dropped (C20);
- the API and workers start while honcho is still bringing PostgreSQL up, so they wait for its port
  (bounded) instead of dying and taking the whole Procfile down with them.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # backend/
from scripts import _forward  # noqa: E402

# Shown by --check: what decides where a process connects and what it calls itself.
CHECK_NAMES = ("WORDLOOM_ENV", "DATABASE_URL", "ELASTIC_URL", "ELASTIC_INDEX", "API_HOST", "API_PORT")


def say(launcher: str, message: str) -> None:
    print(f"[{launcher}] {message}", file=sys.stderr, flush=True)


def honcho_dotenv(cwd: str) -> dict[str, str]:
    """What honcho read from ./.env (its default -e), parsed by honcho's own parser when available."""
    path = os.path.join(cwd, ".env")
    if not os.environ.get("HONCHO_PROCESS_NAME") or not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        from honcho.environ import parse
    except ImportError:  # honcho ran from another environment; dotenv reads our subset alike (C29)
        from wordloom.envfile import read_env_file

        return read_env_file(path)
    return parse(text)


def drop_honcho_dotenv(launcher: str, environ: dict) -> list[str]:
    """Remove variables whose value is exactly what honcho injected from ./.env; return their names."""
    dropped = [k for k, v in honcho_dotenv(os.getcwd()).items() if environ.get(k) == v]
    for name in dropped:
        del environ[name]
    if dropped:
        say(launcher, f"ignoring {', '.join(sorted(dropped))} that honcho read from ./.env (the env file decides)")
    return dropped


def wait_for_database(launcher: str, env_path: str, seconds: float) -> None:
    """Wait up to `seconds` for PostgreSQL's TCP port; then carry on and let the command report."""
    if seconds <= 0:
        return
    from wordloom.envfile import read_env_file

    url = os.environ.get("DATABASE_URL") or read_env_file(env_path).get("DATABASE_URL") or ""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 5432
    except ValueError:
        return
    if not host:
        return  # a Unix socket or no URL: nothing to wait for here
    deadline = time.monotonic() + seconds
    announced = False
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            say(launcher, f"PostgreSQL at {host}:{port} still not reachable after {seconds:g} s; starting anyway")
            return
        if not announced:
            say(launcher, f"waiting up to {seconds:g} s for PostgreSQL at {host}:{port}")
            announced = True
        time.sleep(0.25)


def check(launcher: str, env_path: str, module: str) -> int:
    """--check: report what the command would get, exactly as Command.load_env applies it."""
    from wordloom.envfile import load_env_file, read_env_file
    from wordloom.redact import redact

    load_env_file(env_path)
    print(f"python: {sys.executable}")
    print(f"env file: {env_path}")
    print(f"command: wordloom.commands.{module}")
    for name in dict.fromkeys([*CHECK_NAMES, *read_env_file(env_path)]):
        if name in os.environ:
            print(redact(f"{name}={os.environ[name]}"))
    return 0


def main(argv: list[str]) -> int:
    mode, typed, launcher, env_path, wait_db, module, *rest = argv
    _forward.bootstrap(typed)  # usage lines and errors name the launcher the person ran
    drop_honcho_dotenv(launcher, os.environ)
    if mode == "check":
        return check(launcher, env_path, module)
    wait_for_database(launcher, env_path, float(os.environ.get("WORDLOOM_WAIT_FOR_DB_SECONDS") or wait_db))
    return _forward.run_command(module, ["--env-file", env_path, *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
