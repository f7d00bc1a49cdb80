"""The registry and the legacy fence: what import-linter cannot see, checked by walking files."""
from __future__ import annotations

import ast
import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest

from tests.entrypoints.support import ENTRIES, REGISTRY, REPO, SCRIPTS

TODAY = dt.date.today()
KINDS = {"stable", "deprecated", "implementation"}


def entry_files() -> set[str]:
    """Every file a person could run from the scripts trees (plus the root alias)."""
    found = {p.relative_to(REPO).as_posix() for p in SCRIPTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    found |= {p.relative_to(REPO).as_posix() for p in (REPO / "scripts").glob("*") if p.is_file()}
    found |= {p.name for p in REPO.glob("*.sh")}
    return found


@pytest.mark.parametrize("path", sorted(ENTRIES))
def test_registry_row_is_complete_and_its_file_exists(path):
    entry = ENTRIES[path]
    assert (REPO / path).is_file(), path
    assert entry["kind"] in KINDS
    assert dt.date.fromisoformat(entry["since"]) <= TODAY
    target = entry["target"]
    if entry["kind"] == "deprecated":
        # A removal date in the past fails CI: remove the alias or move the date, consciously.
        assert dt.date.fromisoformat(entry["removal"]) > TODAY, f"{path}: removal date has passed"
        assert entry["replacement"] in ENTRIES and ENTRIES[entry["replacement"]]["kind"] == "stable"
    if target.startswith("wordloom."):
        module = target.split(":")[0]
        assert re.fullmatch(r"wordloom(\.\w+)+", module)
    else:
        assert target in ENTRIES, f"{path}: target {target} is not registered"
        assert (REPO / target).is_file(), f"{path}: target {target} does not exist"


def test_every_file_in_the_scripts_trees_is_registered():
    known = set(ENTRIES) | set(REGISTRY["helpers"])
    assert sorted(entry_files() - known) == []
    assert sorted(set(REGISTRY["helpers"]) - entry_files()) == []


def test_no_unregistered_file_in_legacy():
    legacy = {p.relative_to(REPO).as_posix() for p in (SCRIPTS / "legacy").iterdir() if p.is_file()}
    registered = {p for p, e in ENTRIES.items() if e["kind"] == "implementation"} | set(REGISTRY["helpers"])
    assert sorted(legacy - registered) == []


def test_python_shims_target_legacy_of_the_same_name():
    for path, entry in ENTRIES.items():
        if entry["kind"] == "stable" and path.endswith(".py") and not entry["target"].startswith("wordloom"):
            assert entry["target"] == f"backend/scripts/legacy/{Path(path).name}", path


def test_only_registered_shims_reference_legacy_paths():
    """runpy targets come from the registry; no other file in the scripts tree names legacy/ paths."""
    for rel in entry_files():
        if rel.endswith((".py", ".sh")) and not rel.startswith("backend/scripts/legacy/"):
            text = (REPO / rel).read_text()
            named = set(re.findall(r"legacy/\w+\.py", text))
            own = ENTRIES.get(rel, {}).get("target", "")
            assert named <= {own.removeprefix("backend/scripts/")}, (rel, named)


def test_every_package_folder_has_an_init_so_the_linter_sees_it():
    for folder in [SCRIPTS, *[p for p in SCRIPTS.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        assert (folder / "__init__.py").is_file(), folder


def test_wordloom_never_imports_the_scripts_tree():
    for source in (REPO / "backend" / "wordloom").rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("scripts", "backend.scripts")), f"{source}: imports {name}"


def test_legacy_files_import_only_the_helper():
    for path, entry in ENTRIES.items():
        if entry["kind"] != "implementation":
            continue
        tree = ast.parse((REPO / path).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(f"{node.module}." + ",".join(a.name for a in node.names))
        assert imported <= {"os", "sys", "scripts._forward"}, (path, imported)
        module = entry["target"].split(".")[-1]
        assert f'run_command("{module}"' in (REPO / path).read_text(), path


def test_import_linter_contracts_hold():
    lint = REPO / ".venv" / "bin" / "lint-imports"
    if not lint.exists():
        pytest.skip("import-linter is not installed in .venv")
    proc = subprocess.run([lint, "--config", "backend/scripts/importlinter.toml", "--no-cache"], cwd=REPO,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]


def test_deprecated_shell_aliases_carry_the_registry_date():
    for path, entry in ENTRIES.items():
        if entry["kind"] == "deprecated" and path.endswith(".sh"):
            text = (REPO / path).read_text()
            assert f"use {entry['replacement']} instead (this path will be removed on {entry['removal']})" in text


def test_entrypoints_doc_lists_every_registry_path():
    doc = (REPO / "docs" / "ENTRYPOINTS.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (\w+) \|", doc, re.M)}
    assert set(rows) == set(ENTRIES)
    for path, kind in rows.items():
        assert ENTRIES[path]["kind"] == kind, path


def test_no_carriage_return_in_scripts_procfiles_and_env_files_C21():
    """`.gitattributes` keeps these LF; this catches a file saved with CRLF anyway."""
    files = [*REPO.glob("Procfile*"), *REPO.glob(".env*"), *REPO.glob("*.sh")]
    files += [*SCRIPTS.rglob("*.sh"), *(REPO / "scripts").glob("*.sh"), *SCRIPTS.rglob("*.py")]
    files = [f for f in files if f.is_file() and f.name != ".env"]  # .env is a person's own, untracked
    assert len(files) > 10
    assert [str(f) for f in files if b"\r" in f.read_bytes()] == []


def test_gitattributes_keeps_scripts_and_env_files_lf_C21():
    attrs = (REPO / ".gitattributes").read_text().splitlines()
    for pattern in ("*.sh text eol=lf", "Procfile* text eol=lf", ".env* text eol=lf"):
        assert pattern in attrs
