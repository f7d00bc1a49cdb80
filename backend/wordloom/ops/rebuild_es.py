"""Zero-downtime Elasticsearch rebuild behind the alias `<ELASTIC_INDEX>`.

1. Build `<alias>_v<N>` with the explicit mapping of wordloom.search.index, refresh off.
2. Take the high-water mark (the oldest moment an outbox row not yet visible could carry), then
   bulk-load every search_index row with version_type=external and the row's event_version.
3. Catch up: every entity named by an outbox row created since the mark is re-read from
   search_index (under the same per-entity lock the search worker takes) and written or deleted.
4. Verify: document count == search_index count, and a random sample of rows has documents with
   the same version.  Any failure stops here, says why, removes the half-built index, and the
   alias has not moved.
5. Switch periodic refresh on (it stays off until the index is about to serve), then move the
   alias in ONE `_aliases` request (remove from the old index + add to the new one), so
   every search sees either the old or the new index, never none.
6. Catch up once more from the same mark: until the move, the workers wrote through the alias
   into the old index.  External versions make applying anything twice harmless.
The previous index is kept for `--rollback` (older ones beyond --keep are deleted).

First run over a concrete index named like the alias (what a worker's ensure_index creates): the
concrete index is first copied into `<alias>_v1` (the rollback target), the new index is built as
`_v2`, and step 5 becomes `add alias + remove_index <alias>` in the same single request, so even the
conversion has no window without an index.  Tradeoff: the copy costs one extra pass over the
documents, and writes that reach the concrete index after the copy exist only in the new index
(a rollback to the copy catches them up from the outbox, like any rollback).

Rollback: the alias moves back to the index it pointed at before, after that index is caught up
with the outbox rows created since it stopped receiving writes (search_alias_history).  That needs
those outbox rows to still exist: prune with a retention longer than you may want to roll back.
"""
from __future__ import annotations

import logging
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

import psycopg
from elasticsearch import Elasticsearch, helpers
from psycopg.rows import dict_row

from ..db.queries import query
from ..search.index import BULK_ANSWER_FIELDS, INDEX_MAPPING, document_from_row, document_id, encode_bulk_action
from ..settings import Env
from .progress import Progress
from .rebuild_runs import NIL_UUID, RebuildError, exclusive_run, projection_run

log = logging.getLogger("wordloom.ops.rebuild_es")

PROJECTION = "search_index_to_elastic"
FORCE_FAILURE_ENV = "WORDLOOM_REBUILD_ES_FORCE_VERIFY_FAILURE"
VERIFY_ROUNDS = 3
LOAD_SETTINGS = {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}
SERVE_SETTINGS = {"index": {"refresh_interval": "1s"}}


class VerificationFailed(RebuildError):
    """The new index does not match search_index; the alias was not moved."""


@dataclass(frozen=True)
class RebuildEsOptions:
    batch_size: int = 500
    sample_size: int = 100
    keep: int = 2  # the index the alias points at + this many - 1 previous ones
    margin_seconds: float = 60.0


@dataclass
class RebuildEsResult:
    alias: str
    index: str
    previous: list[str]
    loaded: int
    caught_up: int
    doc_count: int
    converted: bool
    deleted: list[str]


# ------------------------------------------------------------------------------ alias inspection
def alias_targets(es: Elasticsearch, alias: str) -> list[str]:
    if not es.indices.exists_alias(name=alias):
        return []
    return sorted(es.indices.get_alias(name=alias).keys())


def is_concrete_index(es: Elasticsearch, alias: str) -> bool:
    return bool(es.indices.exists(index=alias)) and not es.indices.exists_alias(name=alias)


def versioned_indices(es: Elasticsearch, alias: str) -> dict[int, str]:
    pattern = re.compile(rf"^{re.escape(alias)}_v(\d+)$")
    names = es.indices.get(index=f"{alias}_v*", ignore_unavailable=True, allow_no_indices=True).keys()
    return {int(m.group(1)): name for name in names if (m := pattern.match(name))}


def next_index_name(es: Elasticsearch, alias: str) -> str:
    return f"{alias}_v{max(versioned_indices(es, alias), default=0) + 1}"


# ------------------------------------------------------------------------------ writing documents
def _check_bulk(results: Iterable, what: str) -> int:
    """Count successful items; a 409 (the index already holds this or a newer version) and a 404
    on delete are fine, anything else stops the rebuild."""
    done, errors = 0, []
    for ok, item in results:
        op, info = next(iter(item.items()))
        status = int(info.get("status") or 0)
        if ok or status == 409 or (op == "delete" and status == 404):
            done += 1
        else:
            errors.append(f"{info.get('_id')}: {status} {str(info.get('error'))[:200]}")
    if errors:
        raise RebuildError(f"{what}: {len(errors)} documents rejected, first: {errors[0]}")
    return done


def _index_action(index: str, row: dict) -> dict:
    return {"_op_type": "index", "_index": index, "_id": document_id(row["entity_type"], row["entity_id"]),
            "version": int(row["event_version"]), "version_type": "external", "_source": document_from_row(row)}


# Bulk requests in flight during the load: while the server indexes one, the next is already on
# the wire and a third is being read and encoded here, so neither side waits for the other.
LOAD_BULKS_IN_FLIGHT = 2


def _bulk_items(es: Elasticsearch, body: bytes) -> Iterable[tuple[bool, dict]]:
    """(ok, item) per action of one pre-encoded `_bulk` body, as helpers.streaming_bulk yields
    them; a failure of the request itself raises."""
    answer = es.bulk(operations=body, filter_path=BULK_ANSWER_FIELDS)
    for item in answer.get("items", ()):
        info = next(iter(item.values()))
        yield 200 <= int(info.get("status") or 0) < 300, item


def bulk_load(es: Elasticsearch, conn: psycopg.Connection, index: str, batch_size: int) -> int:
    """Every search_index row into `index`, one keyset page (one `_bulk`) at a time.

    Pages are read and encoded here while up to LOAD_BULKS_IN_FLIGHT earlier pages are being
    indexed on sender threads: reading, encoding and indexing one after the other left each
    server idle much of the time (docs/BENCHMARKS.md, rebuild).  Bounded memory: at most
    LOAD_BULKS_IN_FLIGHT + 1 pages are held.  Order between pages does not matter: every
    document id occurs once, with its external version."""
    total = conn.execute(query("rebuild_es_index_count")).fetchone()[0]
    loaded, after = 0, NIL_UUID

    def send(body: bytes) -> int:
        return _check_bulk(_bulk_items(es, body), f"loading {index}")

    with Progress(f"load {index}", total) as progress, conn.cursor(row_factory=dict_row) as cur, \
            ThreadPoolExecutor(LOAD_BULKS_IN_FLIGHT, thread_name_prefix="rebuild-bulk") as senders:
        in_flight: deque[tuple[Future, int]] = deque()
        try:
            while True:
                rows = cur.execute(query("rebuild_es_index_page"), {"after": after, "limit": batch_size}).fetchall()
                while in_flight and (not rows or len(in_flight) >= LOAD_BULKS_IN_FLIGHT):
                    future, sent = in_flight.popleft()
                    loaded += future.result()  # a rejected document stops the load here
                    progress.update(sent)
                if not rows:
                    return loaded
                after = rows[-1]["id"]
                body = b"".join(encode_bulk_action(index, "upsert", document_id(r["entity_type"], r["entity_id"]),
                                                   r["event_version"], document_from_row(r)) for r in rows)
                in_flight.append((senders.submit(send, body), len(rows)))
        finally:
            for future, _ in in_flight:  # stopping on an error: let the requests on the wire end first
                future.cancel()


def copy_index(es: Elasticsearch, source: str, target: str, batch_size: int) -> int:
    """Copy documents keeping their versions (the rollback target of a conversion)."""
    def actions():
        for hit in helpers.scan(es, index=source, query={"query": {"match_all": {}}}, size=batch_size, version=True):
            src = hit["_source"]
            version = hit.get("_version") or src.get("event_version") or 1
            yield {"_op_type": "index", "_index": target, "_id": hit["_id"], "version": int(version),
                   "version_type": "external", "_source": src}

    return _check_bulk(helpers.streaming_bulk(es, actions(), chunk_size=batch_size, raise_on_error=False,
                                              filter_path=BULK_ANSWER_FIELDS, raise_on_exception=True), f"copying {source} to {target}")


def catch_up(es: Elasticsearch, conn: psycopg.Connection, index: str, since: datetime, batch_size: int) -> int:
    """Re-apply, from search_index, every entity named by an outbox row created since `since`.

    Each page runs in a transaction holding the search worker's per-entity advisory locks
    (outbox_search_lock_entities), so a worker and this catch-up never transfer the state of one
    entity at the same time: the server keeps no delete tombstones, so an older state written
    after a delete would resurrect the document."""
    applied, after = 0, ("", NIL_UUID)
    while True:
        keys = conn.execute(query("rebuild_es_changed_since"), {
            "since": since, "after_type": after[0], "after_id": after[1], "limit": batch_size}).fetchall()
        if not keys:
            return applied
        after = (keys[-1][0], keys[-1][1])
        params = {"entity_types": [k[0] for k in keys], "entity_ids": [k[1] for k in keys]}
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query("outbox_search_lock_entities"), params)
            states = cur.execute(query("outbox_search_current_state"), params).fetchall()
            actions = []
            for s in states:
                if s["present"]:
                    actions.append(_index_action(index, s))
                else:  # deleted: the delete must outrank every version the document ever had
                    actions.append({"_op_type": "delete", "_index": index,
                                    "_id": document_id(s["entity_type"], s["entity_id"]),
                                    "version": int(s["known_version"] or 1), "version_type": "external"})
            applied += _check_bulk(helpers.streaming_bulk(es, actions, chunk_size=batch_size, raise_on_error=False,
                                                          filter_path=BULK_ANSWER_FIELDS, raise_on_exception=True), f"catching up {index}")


# ------------------------------------------------------------------------------ verification
def verification_problems(es: Elasticsearch, conn: psycopg.Connection, index: str, sample_size: int,
                          in_flight_since: datetime) -> tuple[list[str], int]:
    """Count and sampled versions of `index` against search_index: (problems, documents counted).
    Writers keep writing during a rebuild, so a difference explained by an entity changed since
    `in_flight_since` (the start of the last catch-up) is in flight, not a defect."""
    es.indices.refresh(index=index)
    problems = []
    db_count = conn.execute(query("rebuild_es_index_count")).fetchone()[0]
    es_count = es.count(index=index)["count"]
    in_flight = conn.execute(query("rebuild_es_changed_count"), {"since": in_flight_since}).fetchone()[0]
    if abs(es_count - db_count) > in_flight:
        problems.append(f"{index} holds {es_count} documents, search_index has {db_count} rows "
                        f"({in_flight} entities changing)")
    sample = conn.execute(query("rebuild_es_sample_rows"), {"limit": sample_size}).fetchall()
    if sample:
        ids = [document_id(t, i) for t, i, _ in sample]
        docs = {d["_id"]: d for d in es.mget(index=index, ids=ids)["docs"]}
        moving = {(t, i) for t, i in conn.execute(query("rebuild_es_changed_among"), {
            "since": in_flight_since, "entity_types": [r[0] for r in sample], "entity_ids": [r[1] for r in sample]})}
        for (entity_type, entity_id, version), doc_id in zip(sample, ids):
            if (entity_type, entity_id) in moving:
                continue
            doc = docs.get(doc_id) or {}
            if not doc.get("found"):
                problems.append(f"{doc_id} (version {version}) is missing from {index}")
            elif int(doc["_source"].get("event_version", -1)) != int(version):
                problems.append(f"{doc_id}: {index} has version {doc['_source'].get('event_version')}, "
                                f"search_index has {version}")
    if Env().bool(FORCE_FAILURE_ENV, False):
        problems.append(f"failure forced by {FORCE_FAILURE_ENV}")
    return problems, es_count


def verify_caught_up(es, conn, index: str, since: datetime, opts: RebuildEsOptions) -> tuple[int, int]:
    """Catch up, then verify; a few rounds, because a problem may be a change that arrived just
    before the catch-up looked; one that survives a fresh catch-up is real.  Returns (documents
    caught up, documents counted by the passing verification)."""
    caught, problems = 0, []
    for _ in range(VERIFY_ROUNDS):
        round_start = high_water(conn, 0)
        caught += catch_up(es, conn, index, since, opts.batch_size)
        problems, doc_count = verification_problems(es, conn, index, opts.sample_size, round_start)
        if not problems:
            return caught, doc_count
    shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
    raise VerificationFailed(f"verification of {index} failed: {shown}")


# ------------------------------------------------------------------------------ the rebuild
def high_water(conn: psycopg.Connection, margin_seconds: float) -> datetime:
    return conn.execute(query("rebuild_es_high_water"), {"margin_seconds": margin_seconds}).fetchone()[0]


def _activate(conn, alias: str, index: str, action: str, doc_count: int) -> None:
    conn.execute(query("rebuild_es_alias_activate"), {
        "alias": alias, "index_name": index, "action": action, "doc_count": doc_count})


def _drop_quietly(es: Elasticsearch, index: str) -> None:
    try:
        es.options(ignore_status=404).indices.delete(index=index)
    except Exception:  # the original error matters more than a failed clean-up
        log.warning("could not delete %s", index)


def rebuild_es(conn: psycopg.Connection, es: Elasticsearch, alias: str, opts: RebuildEsOptions, *,
               out: Callable[[str], None] = print) -> RebuildEsResult:
    """`conn` must be in autocommit mode."""
    with exclusive_run(conn, PROJECTION), projection_run(conn, PROJECTION):
        converted = is_concrete_index(es, alias)
        current = [] if converted else alias_targets(es, alias)
        previous = list(current)
        if converted:
            copy_name = next_index_name(es, alias)
            out(f"{alias} is a concrete index: copying it to {copy_name} (kept for --rollback) before converting")
            copied_at = high_water(conn, 0)
            es.indices.create(index=copy_name, mappings=INDEX_MAPPING, settings=LOAD_SETTINGS)
            try:
                copied = copy_index(es, alias, copy_name, opts.batch_size)
                es.indices.put_settings(index=copy_name, settings=SERVE_SETTINGS)
            except Exception:
                _drop_quietly(es, copy_name)
                raise
            conn.execute(query("rebuild_es_alias_record_copy"), {
                "alias": alias, "index_name": copy_name, "doc_count": copied, "at": copied_at})
            previous = [copy_name]
        new = next_index_name(es, alias)
        out(f"Building {new}")
        since = high_water(conn, opts.margin_seconds)
        es.indices.create(index=new, mappings=INDEX_MAPPING, settings=LOAD_SETTINGS)
        try:
            loaded = bulk_load(es, conn, new, opts.batch_size)
            # Verified with refresh still off (the check refreshes once itself); periodic refresh
            # is switched on only when the index is about to serve searches.  On the embedded
            # server every refresh and every count walks the whole index, so periodic refresh
            # during verification slowed the count of 1,000,000 documents to ~20 s.
            caught, doc_count = verify_caught_up(es, conn, new, since, opts)
            es.indices.put_settings(index=new, settings=SERVE_SETTINGS)
        except Exception:
            _drop_quietly(es, new)
            raise
        actions = [{"remove": {"index": i, "alias": alias}} for i in current] + [{"add": {"index": new, "alias": alias}}]
        if converted:
            actions.append({"remove_index": {"index": alias}})
        es.indices.update_aliases(actions=actions)  # the one atomic switch
        # doc_count is the verification's count (a second count cost one more walk of the index);
        # what the last catch-up adds is in caught_up.
        _activate(conn, alias, new, "convert" if converted else "rebuild", doc_count)
        caught += catch_up(es, conn, new, since, opts.batch_size)
        deleted = _prune_old_indices(es, alias, keep=opts.keep, live=new)
    return RebuildEsResult(alias, new, previous, loaded, caught, doc_count, converted, deleted)


def _prune_old_indices(es: Elasticsearch, alias: str, keep: int, live: str) -> list[str]:
    """Keep `live` (the index the alias was just switched to; exclusive_run keeps any other
    rebuild from moving it meanwhile) and the newest keep-1 others; delete older versioned indices."""
    others = [name for _, name in sorted(versioned_indices(es, alias).items(), reverse=True) if name != live]
    doomed = others[max(keep - 1, 0):]
    for name in doomed:
        es.options(ignore_status=404).indices.delete(index=name)
    return doomed


def rollback_es(conn: psycopg.Connection, es: Elasticsearch, alias: str, opts: RebuildEsOptions, *,
                out: Callable[[str], None] = print) -> RebuildEsResult:
    with exclusive_run(conn, PROJECTION), projection_run(conn, PROJECTION):
        current = alias_targets(es, alias)
        if len(current) != 1:
            raise RebuildError(f"{alias} is not an alias of exactly one index ({current or 'none'}); nothing to roll back")
        target, stopped_at = _rollback_target(conn, es, alias, current[0])
        since = stopped_at - timedelta(seconds=opts.margin_seconds)
        oldest = conn.execute(query("rebuild_es_oldest_outbox_row")).fetchone()[0]
        if oldest is not None and oldest > since:
            out(f"warning: the search outbox holds no rows older than {oldest:%Y-%m-%d %H:%M:%S}; if rows since "
                f"{since:%Y-%m-%d %H:%M:%S} were pruned, {target} may miss changes (run rebuild-es instead)")
        out(f"Rolling back {alias}: {current[0]} -> {target} (catching up changes since {since:%Y-%m-%d %H:%M:%S} UTC)")
        caught, doc_count = verify_caught_up(es, conn, target, since, opts)
        es.indices.update_aliases(actions=[{"remove": {"index": current[0], "alias": alias}},
                                           {"add": {"index": target, "alias": alias}}])
        _activate(conn, alias, target, "rollback", doc_count)
        caught += catch_up(es, conn, target, since, opts.batch_size)
    return RebuildEsResult(alias, target, current, 0, caught, doc_count, False, [])


def _rollback_target(conn, es: Elasticsearch, alias: str, current: str) -> tuple[str, datetime]:
    rows = conn.execute(query("rebuild_es_rollback_candidates"), {"alias": alias, "current": current}).fetchall()
    for name, stopped_at in rows:
        if es.indices.exists(index=name):
            return name, stopped_at
    raise RebuildError(f"no previous index of {alias} to roll back to (none recorded, or deleted)")
