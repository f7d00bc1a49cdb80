"""Load for the drills: search events through the labs inserters (new documents, updates and
deletes of earlier ones), chronicle events through the domain write path."""
from __future__ import annotations

import random
import time
import uuid

from ...db.connect import connect
from ..inserters import ChronicleInsertSpec, SearchInsertSpec, insert_chronicle_pending, insert_search_pending


class SearchLoad:
    """Mixed search events: `new` upserts of fresh entities, updates and deletes of live ones."""

    def __init__(self, database_url: str, seed: int | None = None, mix=(0.7, 0.2, 0.1)):
        self.url = database_url
        self.rng = random.Random(seed)
        self.mix = mix
        self.live: list[uuid.UUID] = []
        self.counts = {"upsert": 0, "update": 0, "delete": 0}

    def one(self, conn, kind: str | None = None) -> uuid.UUID:
        if kind is None:
            r = self.rng.random()
            kind = "upsert" if r < self.mix[0] or len(self.live) < 3 else "update" if r < self.mix[0] + self.mix[1] else "delete"
        if kind == "upsert":
            entity = uuid.uuid4()
            spec = SearchInsertSpec(entity_id=entity, create_search_index_row=True, search_index_text=f"drill {entity}")
            self.live.append(entity)
        else:
            entity = self.rng.choice(self.live)
            if kind == "delete":
                self.live.remove(entity)
            spec = SearchInsertSpec(entity_id=entity, op="delete" if kind == "delete" else "upsert",
                                    create_search_index_row=True, search_index_text=f"drill {entity} updated")
        insert_search_pending(conn, spec)
        self.counts[kind] += 1
        return entity

    def burst(self, n: int, kind: str | None = None) -> None:
        with connect(self.url, autocommit=True) as conn:
            for _ in range(n):
                self.one(conn, kind)

    def run_for(self, seconds: float, rate: float, tick=None) -> None:
        """About `rate` events per second for `seconds`; `tick(elapsed)` runs between steps."""
        start = time.monotonic()
        sent = 0
        with connect(self.url, autocommit=True) as conn:
            while (elapsed := time.monotonic() - start) < seconds:
                due = int(elapsed * rate) + 1 - sent
                for _ in range(max(0, due)):
                    self.one(conn)
                    sent += 1
                if tick:
                    tick(elapsed)
                time.sleep(0.05)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def chronicle_books(database_url: str, n: int) -> list[dict]:
    with connect(database_url, autocommit=True) as conn:
        library = None
        made = []
        for i in range(n):
            item = insert_chronicle_pending(conn, ChronicleInsertSpec(library_id=library, book_title=f"drill book {i}"))
            library = uuid.UUID(item["library_id"])
            made.append(item)
        return made
