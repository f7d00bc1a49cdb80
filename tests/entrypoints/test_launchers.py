"""The run_*.sh launchers: env file lookup, Python lookup, env-file hygiene (C21-C26).

`--check` makes a launcher report what the command would get (python, env file, settings with
passwords masked) without starting it, so these cases run without PostgreSQL.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.entrypoints.support import ENTRIES, REPO, clean_env, copy_tree, run

LAUNCHERS = sorted(p for p, e in ENTRIES.items() if p.endswith(".sh") and e["kind"] == "stable")
ALIASES = sorted(p for p, e in ENTRIES.items() if p.endswith(".sh") and e["kind"] == "deprecated")


def settings(proc) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr.decode()
    out = {}
    for line in proc.stdout.decode().splitlines():
        key, _, value = line.partition("=") if "=" in line else line.partition(": ")
        out[key] = value
    return out


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_help_and_usage(launcher):
    assert run(["bash", launcher, "--help"]).returncode == 0
    proc = run(["bash", launcher])
    assert proc.returncode == 2 and b"usage:" in proc.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_unknown_option_is_named_before_the_usage(launcher):
    proc = run(["bash", launcher, "--bogus"])
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2
    assert lines[0] == f"[{Path(launcher).stem}] unknown option: --bogus"
    assert lines[1].startswith("usage:")
    # No argument at all is not an "unknown option": usage only.
    assert run(["bash", launcher]).stderr.decode().startswith("usage:")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_missing_env_file_names_the_tried_paths_C26(launcher, tmp_path):
    proc = run(["bash", REPO / launcher, ".env.nowhere"], cwd=tmp_path)
    name = Path(launcher).stem
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 1
    assert lines[0] == f"[{name}] env file not found: .env.nowhere"
    assert f"[{name}] tried: {tmp_path}/.env.nowhere" in lines
    assert f"[{name}] tried: {REPO}/.env.nowhere" in lines
    assert proc.stdout == b""


def test_relative_env_file_from_another_directory_finds_the_repo_root_file_C26(tmp_path):
    got = settings(run(["bash", REPO / "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=tmp_path))
    assert got["env file"] == str(REPO / ".env.test")
    assert got["WORDLOOM_ENV"] == "test"


def test_working_directory_wins_over_the_repo_root_C26(tmp_path):
    (tmp_path / ".env.test").write_text("WORDLOOM_ENV=test\nELASTIC_INDEX=from-cwd\n")
    got = settings(run(["bash", REPO / "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=tmp_path))
    assert got["env file"] == str(tmp_path / ".env.test") and got["ELASTIC_INDEX"] == "from-cwd"


def test_crlf_env_file_values_carry_no_carriage_return_C21(tmp_path):
    text = (REPO / ".env.test").read_text().replace("\n", "\r\n")
    (tmp_path / ".env.test").write_bytes(text.encode())
    proc = run(["bash", REPO / "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=tmp_path)
    got = settings(proc)
    assert b"\r" not in proc.stdout
    assert got["ELASTIC_INDEX"] == "wordloom-test-search-index" and got["API_PORT"] == "30011"


def test_bom_env_file_first_variable_is_loaded_C22(tmp_path):
    (tmp_path / ".env.test").write_bytes(b"\xef\xbb\xbfWORDLOOM_ENV=test\nELASTIC_INDEX=bom-index\n")
    got = settings(run(["bash", REPO / "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=tmp_path))
    assert got["WORDLOOM_ENV"] == "test" and got["ELASTIC_INDEX"] == "bom-index"


def test_exported_value_wins_and_an_empty_export_counts_as_unset_C23():
    env = clean_env(ELASTIC_INDEX="exported-index", ELASTIC_URL="")
    got = settings(run(["bash", "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], env=env))
    assert got["ELASTIC_INDEX"] == "exported-index"
    assert got["ELASTIC_URL"] == "http://127.0.0.1:19200"


def test_no_password_in_check_output():
    proc = run(["bash", "backend/scripts/ops/run_api.sh", "--check", ".env.test"])
    assert b"wordloom:wordloom@" not in proc.stdout and b":***@" in proc.stdout


def test_python3_only_path_C24(tmp_path):
    """PATH holds python3 (no `python`), bash and coreutils only; no venv is activated."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real = Path(os.path.realpath(REPO / ".venv" / "bin" / "python3"))
    os.symlink(real, bindir / "python3")
    for tool in ("bash", "dirname", "basename", "cat", "env", "sh"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bindir / tool)
    env = clean_env(PATH=str(bindir))
    assert shutil.which("python", path=str(bindir)) is None
    got = settings(run(["bash", "./backend/scripts/ops/run_worker.sh", "--check", ".env.test"], env=env))
    assert got["python"].startswith(str(REPO / ".venv"))
    for path in ("backend/scripts/cli.py", "backend/scripts/search_outbox_replay_failed.py"):
        proc = run(["python3", path, "--help"], env=env)
        assert proc.returncode == 0, proc.stderr.decode()


def test_windows_made_venv_is_refused_with_the_fix_C25(tmp_path):
    clone = copy_tree(tmp_path / "win clone")
    (clone / ".venv" / "Scripts").mkdir(parents=True)
    (clone / ".venv" / "Scripts" / "python.exe").write_bytes(b"MZ")
    env = clean_env(PATH="/usr/bin:/bin")  # no poetry either
    proc = run(["bash", "backend/scripts/ops/run_worker.sh", ".env.test"], cwd=clone, env=env)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "created on Windows" in err and "make" in err and "setup" in err


def test_a_linux_venv_next_to_a_windows_one_is_used_C25(tmp_path):
    clone = copy_tree(tmp_path / "mixed clone")
    (clone / "backend" / ".venv" / "Scripts").mkdir(parents=True)
    (clone / "backend" / ".venv" / "Scripts" / "python.exe").write_bytes(b"MZ")
    os.symlink(REPO / ".venv", clone / "backend" / ".venv_linux")
    proc = run(["bash", "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=clone,
               env=clean_env(PATH="/usr/bin:/bin"))
    assert settings(proc)["python"].startswith(str(clone / "backend" / ".venv_linux"))


def test_no_venv_at_all_says_make_setup(tmp_path):
    clone = copy_tree(tmp_path / "bare clone")
    proc = run(["bash", "backend/scripts/ops/run_api.sh", ".env.test"], cwd=clone, env=clean_env(PATH="/usr/bin:/bin"))
    assert proc.returncode == 1 and b"make" in proc.stderr and b"setup" in proc.stderr


def test_active_virtual_env_is_used_first(tmp_path):
    clone = copy_tree(tmp_path / "venv clone")
    proc = run(["bash", "backend/scripts/ops/run_worker.sh", "--check", ".env.test"], cwd=clone,
               env=clean_env(VIRTUAL_ENV=str(REPO / ".venv"), PATH="/usr/bin:/bin"))
    assert settings(proc)["python"].startswith(str(REPO / ".venv"))


@pytest.mark.parametrize("alias", ALIASES)
def test_deprecated_launcher_alias_hint_and_forward(alias):
    entry = ENTRIES[alias]
    cwd = REPO / "backend" if alias.startswith("backend/") else REPO
    typed = "./" + (alias.removeprefix("backend/") if cwd != REPO else alias)
    proc = run([typed, "--check", ".env.test"], cwd=cwd)
    got = settings(proc)
    assert got["env file"] == str(REPO / ".env.test")
    lines = proc.stderr.decode().splitlines()
    assert lines == [
        f"[deprecated] {typed} is an old path: use {entry['replacement']} instead "
        f"(this path will be removed on {entry['removal']})"
    ]


def test_chmod_glob_from_the_root_succeeds():
    proc = run(["bash", "-c", "chmod +x scripts/*.sh backend/scripts/*.sh"])
    assert proc.returncode == 0, proc.stderr.decode()


def test_launchers_export_unbuffered_no_user_site_and_end_in_exec():
    body = (REPO / "backend/scripts/ops/_launcher.sh").read_text()
    assert "export PYTHONNOUSERSITE=1 PYTHONUNBUFFERED=1" in body
    assert 'exec "${PY[@]}"' in body
    for path in [*LAUNCHERS, *ALIASES]:
        text = (REPO / path).read_text()
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
        assert os.access(REPO / path, os.X_OK), path
        last = [line for line in text.splitlines() if line.strip() and not line.startswith("#")][-1]
        # `NAME="..." exec ...` still replaces the shell (the alias hands its typed path along)
        assert re.match(r'^(\w+="[^"]*" )*(exec|launch) ', last), path
