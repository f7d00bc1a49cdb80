"""Drills against the test session's servers: exported DATABASE_URL / ELASTIC_URL / ELASTIC_INDEX /
WORDLOOM_ENV (which win over any env file), evidence under the test's own folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


class Drill:
    def __init__(self, env: dict, outdir: Path, db_url: str):
        self.env, self.outdir, self.db_url = env, outdir, db_url

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "backend/scripts/cli.py", "labs", *args, "--env-file", ".env.test",
                               "--outdir", str(self.outdir)], env=self.env, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=timeout)

    def run(self, scenario: str, *flags: str) -> str:
        run_id = f"t-{scenario.replace('_', '-')}-{'nf' if '--no-fault' in flags else 'f'}-{os.urandom(2).hex()}"
        proc = self.cli("run", scenario, "--run-id", run_id, *flags)
        assert proc.returncode == 0, f"run {scenario} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
        return run_id

    def verify(self, scenario: str, run_id: str) -> tuple[int, dict]:
        proc = self.cli("verify", scenario, "--run-id", run_id)
        path = self.outdir / scenario / run_id / "_result.json"
        return proc.returncode, (json.loads(path.read_text()) if path.exists() else {"stdout": proc.stdout,
                                                                                       "stderr": proc.stderr})

    def lab_url(self, scenario: str, run_id: str) -> str:
        recipe = json.loads((self.outdir / scenario / run_id / "_recipe.json").read_text())
        return self.db_url.rsplit("/", 1)[0] + "/" + recipe["lab_database"]

    def recipe(self, scenario: str, run_id: str) -> dict:
        return json.loads((self.outdir / scenario / run_id / "_recipe.json").read_text())


@pytest.fixture
def drill(worker_env, db_url, tmp_path):
    env = dict(worker_env)
    env.pop("OUTBOX_METRICS_PORT", None)
    return Drill(env, tmp_path / "evidence", db_url)


def failed_checks(result: dict) -> list[str]:
    return [c["name"] for c in result.get("checks", []) if not c["ok"]]
