"""C27 for the shell aliases: `--help` names the path the person typed, from the root and from backend/."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CASES = [
    (REPO, "./run_worker.sh"),
    (REPO, "./scripts/run_worker.sh"),
    (REPO, "./scripts/run_api.sh"),
    (REPO, "./backend/scripts/run_worker.sh"),
    (REPO / "backend", "./scripts/run_worker.sh"),
    (REPO / "backend", "./scripts/run_api.sh"),
    (REPO, "./backend/scripts/ops/run_worker.sh"),
]


@pytest.mark.parametrize("cwd,typed", CASES, ids=[f"{c.name}:{t}" for c, t in CASES])
def test_help_through_a_shell_entry_shows_the_typed_path(cwd, typed):
    proc = subprocess.run(["bash", typed, "--help"], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"usage: {typed} "), proc.stdout
