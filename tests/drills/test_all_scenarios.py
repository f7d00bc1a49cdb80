"""All twelve drills end to end on the test session's servers, by running the command lines of
docs/labs/S3A-2A-3A.md ("Every drill, quick form") verbatim; every verify must exit 0."""
from __future__ import annotations

import json
import subprocess
import time

import psycopg

from tests.entrypoints.docs_runner import REPO, parse_markdown

from wordloom.labs.drills.registry import SCENARIOS

DOC = REPO / "docs" / "labs" / "S3A-2A-3A.md"
BUDGET_SECONDS = 600


def quick_form_lines() -> list[str]:
    """The "quick form" block, then the quick-start lines that need a run before them."""
    commands = parse_markdown(DOC.read_text(encoding="utf-8"), "S3A-2A-3A.md")
    block = [c.text for c in commands if c.skip and c.skip.startswith("covered by tests/drills/test_all_scenarios")]
    after = [c.bare() for c in commands if c.skip and c.skip.startswith("needs the run above")]
    assert block and len(after) == 2
    return block + after


def test_doc_lists_every_scenario():
    runs = {line.split()[4] for line in quick_form_lines() if " labs run " in line}
    verifies = {line.split()[4] for line in quick_form_lines() if " labs verify " in line}
    assert runs == verifies == set(SCENARIOS)


def test_all_scenarios_verbatim(drill, tmp_path):
    env = {**drill.env, "WORDLOOM_VAR_DIR": str(tmp_path / "var"), "PATH": f"{REPO / '.venv' / 'bin'}:{drill.env.get('PATH', '')}"}
    timings, failures = [], []
    started = time.monotonic()
    for line in quick_form_lines():
        t0 = time.monotonic()
        proc = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        timings.append((round(time.monotonic() - t0, 1), line.split(" labs ", 1)[1]))
        if proc.returncode != 0:
            failures.append(f"{line}\n  exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    total = time.monotonic() - started
    print(f"\nall drills: {total:.1f}s\n" + "\n".join(f"  {t:6.1f}s  {what}" for t, what in timings))
    assert not failures, "\n\n".join(failures)
    assert total < BUDGET_SECONDS

    base = tmp_path / "var" / "labs" / "S3A-2A-3A"
    report = (base / "REPORT.md").read_text()
    for name in SCENARIOS:
        assert f"| {name} |" in report and "| NO |" not in report
    exports = list((base / "multi_worker_convergence").glob("*/_exports/*/jaeger-traces-*.json"))
    assert exports and any(json.loads(p.read_text())["data"] for p in exports)
    # clean all --keep-last 1: one folder per scenario left, every drill database dropped
    kept = [json.loads(p.read_text()).get("lab_database") for p in base.glob("*/*/_recipe.json")]
    with psycopg.connect(drill.db_url, autocommit=True) as conn:
        existing = {d for (d,) in conn.execute("SELECT datname FROM pg_database")}
    assert len(kept) == len(SCENARIOS) and not set(kept) & existing
    for name in SCENARIOS:
        assert len([p for p in (base / name).iterdir() if p.is_dir()]) == 1
