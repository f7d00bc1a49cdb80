"""A fresh clone in a directory whose path contains a space works the same (issue 4, "Done when").

`git clone` of this repository's HEAD into `<tmp>/fresh clone with space/wordloom`, plus the work in
progress of the working tree copied over it (files modified or added since HEAD; nothing in this
repository is changed), with no venv of its own: the person's shell has the project's `.venv`
activated (VIRTUAL_ENV + PATH).  A shim, a launcher `--check`, the labs inserter and a worker started
by the launcher must behave as they do in the main checkout.  (test_python_entries.py and
test_launchers.py cover copies of the tree in spaced paths; this one is a real clone: file modes and
line endings as git writes them.)
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.entrypoints import docs_runner as dr
from tests.entrypoints.support import REPO


def git(*args, cwd=REPO) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("fresh clone with space") / "wordloom"
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(dest), cwd=dest.parent)
    pending = git("ls-files", "-z", "--modified", "--others", "--exclude-standard").split(b"\0")
    for rel in filter(None, (p.decode() for p in pending)):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    assert " " in str(dest) and not (dest / ".venv").exists()
    return dest


@pytest.fixture
def runner(clone, stack, db_url, es_index, tmp_path):
    return dr.Runner(dr.Servers(db_url, stack.elastic_url, es_index, tmp_path), root=clone)


def test_shim_help_is_the_same_as_in_the_main_checkout(clone, runner):
    cmd = ["python", "backend/scripts/cli.py", "--help"]
    here = subprocess.run(cmd, cwd=clone, env=runner.environ(), capture_output=True, timeout=60)
    main = subprocess.run(cmd, cwd=REPO, env=runner.environ(), capture_output=True, timeout=60)
    assert here.returncode == 0, here.stderr.decode()
    assert here.stdout == main.stdout


def test_launcher_check_resolves_the_clones_env_file_and_the_active_venv(clone, runner):
    proc = subprocess.run(["./backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=clone,
                          env=runner.environ(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert f"env file: {clone}/.env.test" in out
    assert f"python: {REPO / '.venv'}" in out


def test_inserter_and_worker_run_from_the_clone(runner):
    summary = runner.run(dr.DocCommand("python backend/scripts/labs/labs_009_insert_search_outbox_pending.py"))
    assert "1 outbox id" in summary
    summary = runner.run(dr.DocCommand("./backend/scripts/ops/run_worker.sh .env.test"))
    assert "drained" in summary


def test_the_clone_runs_its_own_code(clone, runner):
    """The clone's backend/ is first on sys.path, not the main checkout the venv was installed from."""
    probe = ("import sys; sys.argv=['x']; sys.path.insert(0, 'backend'); "
             "from scripts import _forward; _forward.bootstrap(); import wordloom; print(wordloom.__file__)")
    proc = subprocess.run(["python", "-c", probe], cwd=clone, env=runner.environ(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip().startswith(str(clone)), proc.stdout
