"""`cli.py dev import` end to end: a subprocess against the test's own database."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from wordloom.importers.runner import split_paragraphs

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_import(worker_env, tmp_path, *args, env_overrides=None):
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    env = {**worker_env, **(env_overrides or {})}
    # The in-repo router module (backend/scripts/cli.py forwards to it); an empty env file so no
    # developer's .env.dev can leak into the test.
    return subprocess.run([sys.executable, "-m", "wordloom.cli", "dev", "import", "--env-file", str(empty_env_file),
                           *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def table_counts(db_url):
    with psycopg.connect(db_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("libraries", "books", "blocks", "search_index", "search_outbox_events")}


def test_markdown_directory_import_and_reimport_does_not_duplicate(worker_env, db_url, tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text("# Alpha title\n\nFirst paragraph\nstill first.\n\nSecond.\n", encoding="utf-8")
    (notes / "b.md").write_bytes("\ufeffno heading here\r\n\r\nsecond para\r\n".encode("utf-8"))
    (notes / "sub" / "c.md").write_text("intro\n\n## Gamma\n\nbody\n", encoding="utf-8")
    (notes / "ignored.txt").write_text("not markdown")
    result = run_import(worker_env, tmp_path, "--markdown", str(notes))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(db_url) as conn:
        lib_id = conn.execute("SELECT id FROM libraries WHERE name = 'notes'").fetchone()[0]
        titles = dict(conn.execute("SELECT b.title, count(bl.id) FROM books b LEFT JOIN blocks bl ON bl.book_id = b.id"
                                   " GROUP BY b.title").fetchall())
    assert result.stdout == f"Imported 3 books, 6 blocks into library notes (id {lib_id})\n"
    assert titles == {"Alpha title": 2, "b": 2, "Gamma": 2}
    first = table_counts(db_url)
    assert first["search_index"] == 3 + 6

    again = run_import(worker_env, tmp_path, "--markdown", str(notes))
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    second = table_counts(db_url)
    assert {k: second[k] for k in ("libraries", "books", "blocks", "search_index")} == \
           {k: first[k] for k in ("libraries", "books", "blocks", "search_index")}
    # the replaced books' documents get delete events, the new ones upserts
    assert second["search_outbox_events"] == 2 * first["search_outbox_events"] + 9


def test_python_docs_import_is_complete_and_quick(worker_env, db_url, tmp_path):
    from pydoc_data.topics import topics

    expected_blocks = sum(len(split_paragraphs(t)) for t in topics.values())
    started = time.monotonic()
    result = run_import(worker_env, tmp_path, "--python-docs")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Imported {len(topics)} books, {expected_blocks} blocks into library Python docs (id ")
    counts = table_counts(db_url)
    assert counts["books"] == len(topics) and counts["blocks"] == expected_blocks
    assert counts["search_index"] == len(topics) + expected_blocks
    with psycopg.connect(db_url) as conn:
        assert {r[0] for r in conn.execute("SELECT title FROM books WHERE title IN ('with', 'context-managers')")} \
            == {"with", "context-managers"}
        hits = conn.execute("SELECT count(*) FROM search_index s JOIN blocks bl ON bl.id = s.entity_id"
                            " JOIN books b ON b.id = bl.book_id"
                            " WHERE b.title = 'context-managers' AND s.text ILIKE '%%context manager%%'").fetchone()[0]
        assert hits > 0
    print(f"python-docs import: {len(topics)} books, {expected_blocks} blocks in {elapsed:.1f}s")
    assert elapsed < 60, f"import took {elapsed:.1f}s"


def test_import_refuses_another_environments_database(worker_env, db_url, tmp_path):
    result = run_import(worker_env, tmp_path, "--python-docs", env_overrides={"WORDLOOM_ENV": "dev"})
    assert result.returncode == 2
    assert "refusing to start: WORDLOOM_ENV=dev" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert table_counts(db_url)["books"] == 0


def test_import_usage_errors(worker_env, tmp_path):
    assert run_import(worker_env, tmp_path).returncode == 2  # neither source given
    missing = run_import(worker_env, tmp_path, "--markdown", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr


def test_help_documents_replace_by_title(worker_env, tmp_path):
    result = run_import(worker_env, tmp_path, "--help")
    assert result.returncode == 0
    assert "REPLACED" in result.stdout

