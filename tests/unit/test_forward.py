"""The forwarding helper (backend/scripts/_forward.py), on a copy of the tree with probe entries.

The probe target prints what it received, so argv, stdin, stdout, the exit code, the typed path,
the one hint line and the interpreter re-exec are all observed from outside, as a person would.
"""
from __future__ import annotations

import json
import os

import pytest

from tests.entrypoints.support import REPO, VENV_PY, clean_env, copy_tree, run, system_python

PROBE = '''import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))
from scripts import _forward
_forward.bootstrap()
data = sys.stdin.read()
print(json.dumps({"argv": sys.argv, "stdin": data, "warnoptions": sys.warnoptions,
                  "prefix": os.path.realpath(sys.prefix)}))
sys.exit(7)
'''


@pytest.fixture
def clone(tmp_path):
    root = copy_tree(tmp_path / "clone dir")
    scripts = root / "backend" / "scripts"
    (scripts / "legacy" / "probe.py").write_text(PROBE)
    (scripts / "probe.py").write_text((scripts / "cli.py").read_text())  # a real 3-line shim
    (scripts / "old_probe.py").write_text((scripts / "cli.py").read_text())
    reg = json.loads((scripts / "registry.json").read_text())
    reg["entries"] += [
        {"path": "backend/scripts/probe.py", "kind": "stable", "target": "backend/scripts/legacy/probe.py", "since": "2026-01-01"},
        {"path": "backend/scripts/old_probe.py", "kind": "deprecated", "target": "backend/scripts/probe.py",
         "replacement": "backend/scripts/probe.py", "since": "2026-01-01", "removal": "2099-01-01"},
    ]
    (scripts / "registry.json").write_text(json.dumps(reg))
    return root


def probe(proc):
    assert proc.stdout, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_argv_stdin_stdout_and_exit_code_pass_through(clone, tmp_path):
    shim = clone / "backend" / "scripts" / "probe.py"
    proc = run([VENV_PY, shim, "a b", "--flag", "-"], cwd=tmp_path, input=b"line1\nline2\n")
    assert proc.returncode == 7
    got = probe(proc)
    assert got["argv"] == [str(shim), "a b", "--flag", "-"]  # argv[0] is the path typed
    assert got["stdin"] == "line1\nline2\n"
    assert proc.stderr == b""


def test_relative_typed_path_from_another_directory(clone):
    proc = run([VENV_PY, "scripts/probe.py", "x"], cwd=clone / "backend")
    assert probe(proc)["argv"] == ["scripts/probe.py", "x"]


def test_deprecated_path_one_hint_on_stderr_and_chain_to_stable(clone):
    proc = run([VENV_PY, "-W", "error", "backend/scripts/old_probe.py", "x"], cwd=clone)
    assert proc.returncode == 7
    assert probe(proc)["argv"] == ["backend/scripts/old_probe.py", "x"]
    lines = proc.stderr.decode().splitlines()
    assert lines == [
        "[deprecated] backend/scripts/old_probe.py is an old path: use backend/scripts/probe.py instead "
        "(this path will be removed on 2099-01-01)"
    ]


def test_unregistered_shim_is_refused(clone):
    shim = clone / "backend" / "scripts" / "stray.py"
    shim.write_text((clone / "backend" / "scripts" / "cli.py").read_text())
    proc = run([VENV_PY, shim], cwd=clone)
    assert proc.returncode == 1 and b"not listed in backend/scripts/registry.json" in proc.stderr


def test_reexec_into_project_venv_keeps_argv_and_W_flags_C24_C28(clone):
    python = system_python()
    if python is None:
        pytest.skip("no interpreter without the project's dependencies on this machine")
    os.symlink(REPO / ".venv", clone / ".venv")
    proc = run([python, "-W", "error::DeprecationWarning", "backend/scripts/probe.py", "x"], cwd=clone, input=b"in")
    assert proc.returncode == 7
    got = probe(proc)
    assert got["prefix"] == os.path.realpath(REPO / ".venv")
    assert got["warnoptions"] == ["error::DeprecationWarning"]
    assert got["argv"] == ["backend/scripts/probe.py", "x"] and got["stdin"] == "in"


def test_windows_venv_only_says_what_to_do_C25(clone):
    python = system_python()
    if python is None:
        pytest.skip("no interpreter without the project's dependencies on this machine")
    (clone / ".venv" / "Scripts").mkdir(parents=True)
    (clone / ".venv" / "Scripts" / "python.exe").write_bytes(b"MZ")
    proc = run([python, "backend/scripts/probe.py"], cwd=clone, env=clean_env())
    assert proc.returncode == 1 and proc.stdout == b""
    (line,) = proc.stderr.decode().splitlines()
    assert "Windows" in line and "make setup" in line


def test_every_shim_is_at_most_four_lines_and_only_calls_the_helper():
    reg = json.loads((REPO / "backend" / "scripts" / "registry.json").read_text())
    for entry in reg["entries"]:
        if entry["path"].endswith(".py") and entry["kind"] in ("stable", "deprecated"):
            lines = (REPO / entry["path"]).read_text().splitlines()
            assert len(lines) <= 4, entry["path"]
            assert lines[-1] == "from scripts._forward import forward; forward(__file__)", entry["path"]
