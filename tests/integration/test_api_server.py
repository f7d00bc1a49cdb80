"""`cli.py ops api`: the real uvicorn process, its environment guard and its startup line."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from wordloom.devstack.ports import free_port

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]


def with_password(url: str, password: str) -> str:
    # The embedded PostgreSQL uses trust auth, so a password in the URL is accepted and unused:
    # enough to prove the process never prints it.
    p = urlsplit(url)
    return urlunsplit((p.scheme, f"{p.username}:{password}@{p.hostname}:{p.port}", p.path, p.query, p.fragment))


def api_command(tmp_path, *args):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return [sys.executable, "-m", "wordloom.cli", "ops", "api", "--env-file", str(env_file), *args]


def test_api_server_refuses_a_mismatched_environment(worker_env, tmp_path):
    env = {**worker_env, "WORDLOOM_ENV": "dev", "API_PORT": str(free_port())}
    result = subprocess.run(api_command(tmp_path), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to start: WORDLOOM_ENV=dev" in lines[0]


def test_api_server_serves_and_never_prints_the_password(worker_env, db_url, tmp_path):
    port = free_port()
    env = {**worker_env, "DATABASE_URL": with_password(db_url, "s3cr3t-pw"), "API_HOST": "127.0.0.1",
           "API_PORT": str(port)}
    proc = subprocess.Popen(api_command(tmp_path), env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2) as r:
                    assert json.load(r)["ok"] is True
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "API did not come up"
                time.sleep(0.2)
        req = urllib.request.Request(f"{base}/api/v1/libraries", data=b'{"name": "via http"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "s3cr3t-pw" not in out + err
    startup = [json.loads(l) for l in err.splitlines() if l.startswith("{") and "starting wordloom-api" in l]
    assert startup and f"127.0.0.1:{port}" in startup[0]["message"] and "***" in startup[0]["message"]
