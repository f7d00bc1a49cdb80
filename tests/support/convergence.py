"""Random writes through the domain write path, and the check that Elasticsearch equals search_index.

Used by the kill -9 test (C03) and the multi-worker convergence test: whatever the workers went
through, at the end every search_index row has its document at the same event_version and no
other document exists (a deleted entity has none).
"""
from __future__ import annotations

import os
import random
import threading
import time
import uuid

import psycopg
from elasticsearch import Elasticsearch

from wordloom import domain
from wordloom.domain import Conflict, NotFound

SLOW_SEED_COUNT = 20


def seed_params(config, default: int, env_name: str) -> list:
    """Seeds for a randomized test: `default` of them, SLOW_SEED_COUNT under `-m slow`, or the
    number in `env_name`.  The first is WORDLOOM_CONVERGENCE_SEED when set, else random; each run
    is marked slow when more than the default run."""
    import pytest

    slow_run = "slow" in (getattr(config.option, "markexpr", "") or "")
    count = int(os.environ.get(env_name) or (SLOW_SEED_COUNT if slow_run else default))
    base = int(os.environ.get("WORDLOOM_CONVERGENCE_SEED") or random.SystemRandom().randrange(1, 10**6))
    marks = [pytest.mark.slow] if slow_run or count > default else []
    return [pytest.param(base + i, id=f"seed{base + i}", marks=marks) for i in range(count)]


UNICODE_WORDS = ["café", "€uro", "naïve", "漢字", "カタカナ", "emoji 🚀", "ßtraße", "Ωmega", "plain"]


def seed_books(conn, rng: random.Random, n_blocks: int, n_books: int = 4) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """A library with `n_books` books holding `n_blocks` blocks in all: (book ids, block ids)."""
    library = domain.create_library(conn, f"lib-{rng.random():.6f}")
    books, blocks = [], []
    per_book = n_blocks // n_books
    for b in range(n_books):
        count = per_book if b < n_books - 1 else n_blocks - per_book * (n_books - 1)
        book, bs = domain.create_book_with_blocks(
            conn, library["id"], f"Book {b}", [f"block {b}.{i} {rng.choice(UNICODE_WORDS)}" for i in range(count)],
            summary="summary")
        books.append(book["id"])
        blocks += [x["id"] for x in bs]
    return books, blocks


def random_write(conn, rng: random.Random, books: list, blocks: list) -> str:
    """One random update / delete / restore of a block (mostly) or a book (sometimes)."""
    roll = rng.random()
    try:
        if roll < 0.04:
            book = rng.choice(books)
            if rng.random() < 0.5:
                domain.soft_delete_book(conn, book)
                return "book_delete"
            domain.restore_book(conn, book)
            return "book_restore"
        block = rng.choice(blocks)
        if roll < 0.55:
            domain.update_block(conn, block, content=f"edit {rng.random():.8f} {rng.choice(UNICODE_WORDS)}")
            return "update"
        if roll < 0.78:
            domain.soft_delete_block(conn, block)
            return "delete"
        domain.restore_block(conn, block)
        return "restore"
    except (Conflict, NotFound):
        return "skipped"  # e.g. an update of a block whose book is deleted


class Hammer:
    """Writer threads running random_write until stopped; counts what they did."""

    def __init__(self, db_url: str, seed: int, books: list, blocks: list, threads: int = 2,
                 pause: float = 0.0):
        self.db_url, self.seed, self.books, self.blocks = db_url, seed, books, blocks
        self.pause = pause
        self.stop_event = threading.Event()
        self.counts: dict[str, int] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        rng = random.Random(f"{self.seed}-{i}")
        try:
            with psycopg.connect(self.db_url, autocommit=True) as conn:
                while not self.stop_event.is_set():
                    what = random_write(conn, rng, self.books, self.blocks)
                    with self._lock:
                        self.counts[what] = self.counts.get(what, 0) + 1
                    if self.pause:
                        time.sleep(self.pause)
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def start(self) -> "Hammer":
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> dict:
        self.stop_event.set()
        for t in self.threads:
            t.join(20)
        if self.errors:
            raise self.errors[0]
        return dict(self.counts)


def outbox_settled(conn) -> bool:
    """Every search outbox row is done or failed (nothing pending or processing)."""
    row = conn.execute("SELECT count(*) FILTER (WHERE status IN ('pending', 'processing'))"
                       " FROM search_outbox_events").fetchone()
    return row[0] == 0


def search_index_versions(conn) -> dict[str, int]:
    return {f"{t}:{e}": v for t, e, v in
            conn.execute("SELECT entity_type, entity_id, event_version FROM search_index").fetchall()}


def es_versions(es: Elasticsearch, index: str) -> dict[str, tuple[int, int]]:
    """doc id -> (_version, _source.event_version) for every document of the index."""
    es.indices.refresh(index=index)
    out: dict[str, tuple[int, int]] = {}
    resp = es.search(index=index, query={"match_all": {}}, size=10_000, version=True,
                     source=["event_version"], sort=["_doc"])
    hits = resp["hits"]["hits"]
    assert len(hits) < 10_000, "too many documents for a single page"
    for hit in hits:
        out[hit["_id"]] = (hit["_version"], hit["_source"]["event_version"])
    return out


def assert_es_matches_search_index(conn, es: Elasticsearch, index: str, context: str = "") -> int:
    """ES == search_index exactly: same ids, each document at its row's event_version (as the
    external _version and in the body), no document for a deleted entity.  Returns the count."""
    expected = search_index_versions(conn)
    actual = es_versions(es, index)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    wrong = sorted((k, expected[k], actual[k]) for k in set(expected) & set(actual)
                   if actual[k] != (expected[k], expected[k]))
    below = [w for w in wrong if w[2][0] < w[1]]
    assert not (missing or extra or wrong), (
        f"{context}: Elasticsearch differs from search_index: {len(missing)} missing {missing[:5]}, "
        f"{len(extra)} documents of deleted entities {extra[:5]}, {len(wrong)} at another version "
        f"{wrong[:5]} ({len(below)} below their row's version)")
    return len(expected)
