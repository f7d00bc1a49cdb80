"""honcho with the real launchers: shutdown (C18), output latency (C19), a stray .env (C20).

The long-running process is the real run_worker.sh waiting for a PostgreSQL port that is closed
(the launcher's bounded wait), next to a plain Python sleeper; neither needs a database.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.entrypoints.support import REPO, VENV_PY, clean_env, copy_tree

HONCHO = REPO / ".venv" / "bin" / "honcho"
SLEEPER = """import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("sleeper-up")  # no flush: PYTHONUNBUFFERED must carry it (C19)
time.sleep(600)
"""

pytestmark = pytest.mark.skipif(not HONCHO.exists(), reason="honcho is not installed in .venv")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_for(path: Path, text: str, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if text in path.read_text(errors="replace"):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


@pytest.fixture
def honcho_dir(tmp_path):
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / ".env.wait").write_text(
        f"WORDLOOM_ENV=test\nDATABASE_URL=postgresql://wordloom:secret@127.0.0.1:{closed_port()}/wordloom_test\n"
    )
    (tmp_path / "Procfile").write_text(
        f"worker: bash {REPO}/backend/scripts/ops/run_worker.sh .env.wait\n"
        f"sleeper: bash -c 'export PYTHONUNBUFFERED=1; exec {VENV_PY} sleeper.py'\n"
    )
    return tmp_path


def test_sigterm_brings_the_tree_down_without_sigkill_and_output_is_prompt_C18_C19(honcho_dir):
    out = honcho_dir / "honcho.out"
    with open(out, "wb") as f:  # honcho's stdout is a file (C19)
        proc = subprocess.Popen([HONCHO, "start", "--no-colour", "-f", "Procfile"], cwd=honcho_dir,
                                stdout=f, stderr=subprocess.STDOUT, env=clean_env())
    try:
        assert wait_for(out, "worker.1 started", 10) is not None, out.read_text()
        # C19: lines reach honcho's output file within 2 s of the process starting.
        assert wait_for(out, "[run_worker] waiting up to", 2.5) is not None, out.read_text()
        assert wait_for(out, "sleeper-up", 2.5) is not None, out.read_text()
        tree = descendants(proc.pid)
        cmds = [cmdline(p) for p in tree]
        # exec: the launcher's bash is gone, replaced by Python (signals reach it directly).
        assert any("_launch.py" in c for c in cmds), cmds
        assert not any("run_worker.sh" in c and "_launch.py" not in c and c.startswith("bash") for c in cmds), cmds
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=6)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.05)
        survivors = [cmdline(p) for p in tree if alive(p)]
        assert survivors == []
        text = out.read_text()
        assert "sending SIGKILL" not in text
        assert "secret" not in text  # the password in DATABASE_URL is never printed
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stray_dotenv_in_the_root_is_never_seen_by_the_test_stack_C20(tmp_path):
    """Procfile.test's own lines (with --check) run by honcho in a clone whose root holds a poisoned .env."""
    clone = copy_tree(tmp_path / "clone")
    os.symlink(REPO / ".venv", clone / ".venv")
    (clone / ".env").write_text("DATABASE_URL=postgresql://poison@127.0.0.1:1/dev\nSTRAY_ONLY=poison-value\n")
    lines = (REPO / "Procfile.test").read_text().splitlines()
    procfile = "\n".join(line.replace(".sh ", ".sh --check ") for line in lines) + "\n"
    (clone / "Procfile.test").write_text(procfile)
    names = [line.split(":", 1)[0] for line in lines if line and not line.startswith("#")]
    assert names == ["services", "api", "worker_search", "worker_chronicle"]
    for name in names:  # one at a time: honcho stops the others when the first --check exits
        proc = subprocess.run([HONCHO, "start", "--no-colour", "-f", "Procfile.test", name], cwd=clone,
                              capture_output=True, timeout=60, env=clean_env())
        text = proc.stdout.decode()
        assert "DATABASE_URL=postgresql://wordloom:***@127.0.0.1:5435/wordloom_test" in text, text
        assert "WORDLOOM_ENV=test" in text
        assert "poison" not in text.lower()
        assert "ignoring DATABASE_URL, STRAY_ONLY that honcho read from ./.env" in text, text
