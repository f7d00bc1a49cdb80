"""A worker whose database is not there keeps waiting (honcho keeps the stack up, C14) and keeps
saying so: one WARNING line every OUTBOX_DB_WAIT_LOG_SECONDS, host:port only, never the password."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest

from tests.entrypoints.support import REPO, clean_env
from wordloom.devstack.ports import free_port
from wordloom.settings import worker_settings

PASSWORD = "pw-Wait-4711"


def test_the_repeat_interval_defaults_to_10_seconds():
    base = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/x_test"}
    assert worker_settings("search", base).db_wait_log_seconds == 10.0
    assert worker_settings("search", {**base, "OUTBOX_DB_WAIT_LOG_SECONDS": "1.5"}).db_wait_log_seconds == 1.5


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["backend/scripts/ops/run_worker.sh", "backend/scripts/ops/run_chronicle_worker.sh"])
def test_worker_on_a_closed_port_keeps_saying_it_waits_then_exits_0_on_sigterm(launcher, tmp_path):
    port = free_port()  # bound and released: nothing listens there
    env_file = tmp_path / "worker.env"
    env_file.write_text("WORDLOOM_ENV=dev\n")
    env = clean_env(DATABASE_URL=f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/wordloom_dev",
                    WORDLOOM_WAIT_FOR_DB_SECONDS="0", OUTBOX_DB_WAIT_LOG_SECONDS="1",
                    WORDLOOM_VAR_DIR=str(tmp_path / "var"))
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(["bash", str(REPO / launcher), str(env_file)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in proc.stdout), daemon=True)
    reader.start()

    def still_waiting() -> list[dict]:
        records = []
        for line in list(lines):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return [r for r in records if r.get("message", "").startswith("still waiting for the database at ")]

    try:
        deadline = time.monotonic() + 12
        while len(still_waiting()) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "\n".join(lines)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(2)
    out = "\n".join(lines)
    repeats = still_waiting()
    assert len(repeats) >= 2, out
    for record in repeats:
        assert record["level"] == "WARNING"
        assert record["message"].startswith(f"still waiting for the database at 127.0.0.1:{port} (")
        assert record["message"].endswith(" s)")
    assert out.count('"message": "waiting for the database"') == 1  # the first line, then the repeats
    assert PASSWORD not in out
    assert code == 0, out
