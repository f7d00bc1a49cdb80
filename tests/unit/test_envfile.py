"""Env files are read alike everywhere: BOM, CRLF, empty exports, and honcho vs python-dotenv."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from wordloom.envfile import EnvFileNotFound, load_env_file, read_env_file, resolve_env_file

REPO = Path(__file__).resolve().parents[2]
COMMITTED = [REPO / ".env.dev", REPO / ".env.test"]


def test_crlf_values_carry_no_carriage_return_C21(tmp_path):
    f = tmp_path / ".env.test"
    f.write_bytes((REPO / ".env.test").read_bytes().replace(b"\n", b"\r\n"))
    values = read_env_file(f)
    assert values == read_env_file(REPO / ".env.test")
    assert not any("\r" in k or "\r" in v for k, v in values.items())


def test_bom_first_variable_is_loaded_C22(tmp_path):
    f = tmp_path / ".env.test"
    f.write_bytes(b"\xef\xbb\xbf" + (REPO / ".env.test").read_bytes())
    values = read_env_file(f)
    assert values["WORDLOOM_ENV"] == "test"
    assert not any(k.startswith("\ufeff") for k in values)


def test_empty_export_counts_as_unset_and_non_empty_export_wins_C23(tmp_path):
    f = tmp_path / ".env.test"
    f.write_text("ELASTIC_URL=http://127.0.0.1:19200\nELASTIC_INDEX=from-file\n")
    environ = {"ELASTIC_URL": "", "ELASTIC_INDEX": "exported"}
    load_env_file(f, environ=environ)
    from_file = environ.pop("_WORDLOOM_FROM_ENV_FILE")
    assert environ == {"ELASTIC_URL": "http://127.0.0.1:19200", "ELASTIC_INDEX": "exported"}
    assert from_file == "ELASTIC_URL"  # remembered as a file default, not as an export


def test_resolve_tries_cwd_then_repo_root_C26(tmp_path):
    assert resolve_env_file(".env.test", cwd=tmp_path) == (REPO / ".env.test").resolve()
    (tmp_path / ".env.test").write_text("A=1\n")
    assert resolve_env_file(".env.test", cwd=tmp_path) == (tmp_path / ".env.test").resolve()
    with pytest.raises(EnvFileNotFound) as exc:
        resolve_env_file(".env.none", cwd=tmp_path)
    assert exc.value.tried == [tmp_path / ".env.none", REPO / ".env.none"]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_honcho_and_python_dotenv_read_the_committed_files_alike_C29(path):
    honcho_environ = pytest.importorskip("honcho.environ")
    assert honcho_environ.parse(path.read_text()) == read_env_file(path)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_env_files_stay_in_the_subset_both_parsers_share_C29(path):
    """Plain KEY=value: no quotes, export, spaces, `$`, `#` or backslashes in values, no BOM/CR."""
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    for line in raw.decode().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"$#\\]*", line), line


def test_the_shared_subset_really_is_shared_C29(tmp_path):
    """What the subset rule excludes is exactly where the two parsers part ways (so the rule matters)."""
    honcho_environ = pytest.importorskip("honcho.environ")
    f = tmp_path / ".env"
    f.write_text("export A=x\n")  # dotenv reads A; honcho skips the line
    assert honcho_environ.parse(f.read_text()) != read_env_file(f)


def test_exported_generic_port_beats_the_files_specific_one(tmp_path):
    """An old runbook's `OUTBOX_METRICS_PORT=19931 python backend/scripts/search_outbox_worker.py`
    must win over SEARCH_OUTBOX_METRICS_PORT from .env.dev; without the export the file decides."""
    from wordloom.envfile import load_env_file
    from wordloom.settings import worker_settings

    env_file = tmp_path / ".env.x"
    env_file.write_text("DATABASE_URL=postgresql://u@h/db_dev\nSEARCH_OUTBOX_METRICS_PORT=9108\n"
                        "CHRONICLE_OUTBOX_METRICS_PORT=9110\n")
    exported = {"OUTBOX_METRICS_PORT": "19931"}
    load_env_file(env_file, environ=exported)
    assert worker_settings("search", exported).metrics_port == 19931
    assert worker_settings("chronicle", exported).metrics_port == 19931
    plain: dict = {}
    load_env_file(env_file, environ=plain)
    assert worker_settings("search", plain).metrics_port == 9108
    assert worker_settings("chronicle", plain).metrics_port == 9110
    both = {"OUTBOX_METRICS_PORT": "1", "SEARCH_OUTBOX_METRICS_PORT": "2"}  # both exported: specific wins
    load_env_file(env_file, environ=both)
    assert worker_settings("search", both).metrics_port == 2
