"""Named queries loaded from `queries/*.sql`.

A file holds one or more queries, each introduced by a line `-- name: <query_name>`.  Python code
refers to them by name (`query("claim_batch")`), so every statement the engine runs can be read in
one place.  Table names that differ between the two outboxes are written `{outbox}` and filled from
a fixed whitelist, never from input.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

QUERY_DIR = Path(__file__).with_name("queries")
OUTBOX_TABLES = {"search": "search_outbox_events", "chronicle": "chronicle_outbox_events"}
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@lru_cache(maxsize=None)
def _all_queries() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(QUERY_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2]):
            if name in found:
                raise RuntimeError(f"query {name!r} defined twice (second in {path.name})")
            found[name] = body.strip().rstrip(";")
    return found


@lru_cache(maxsize=None)
def query(name: str, projection: str | None = None) -> str:
    try:
        sql = _all_queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {QUERY_DIR}") from None
    if "{outbox}" in sql:
        if projection not in OUTBOX_TABLES:
            raise ValueError(f"query {name!r} needs a projection, got {projection!r}")
        sql = sql.replace("{outbox}", OUTBOX_TABLES[projection])
    return sql
