-- Statements of the operations tools (wordloom.ops): replay, rebuilds, status, prune.
-- Keyset pages start after the nil uuid rather than NULL, so `id > %(after)s` stays an index range
-- scan (an `x IS NULL OR id > x` form can fall back to a full scan per page).


-- ===================================================================== replay failed rows
-- Filters shared by the replay statements: every one optional (NULL = not filtering).
-- --since-hours is measured on created_at (the event's age), as v3's tool did.

-- name: replay_match_by_reason
SELECT coalesce(error_reason, 'none') AS error_reason, count(*) AS n
FROM {outbox}
WHERE status = 'failed'
  AND (%(entity_type)s::text IS NULL OR entity_type = %(entity_type)s)
  AND (%(since_hours)s::float8 IS NULL OR created_at >= now() - make_interval(secs => %(since_hours)s * 3600))
  AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
  AND (%(error_reason)s::text IS NULL OR error_reason = %(error_reason)s)
GROUP BY 1
ORDER BY 2 DESC, 1;

-- name: replay_select_failed
-- The rows a replay takes, oldest first, at most `limit` (v3 printed the limit and updated every
-- match).  Locked until commit; rows another replay holds right now are skipped, not waited for.
SELECT id FROM {outbox}
WHERE status = 'failed'
  AND (%(entity_type)s::text IS NULL OR entity_type = %(entity_type)s)
  AND (%(since_hours)s::float8 IS NULL OR created_at >= now() - make_interval(secs => %(since_hours)s * 3600))
  AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
  AND (%(error_reason)s::text IS NULL OR error_reason = %(error_reason)s)
ORDER BY created_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: replay_preview_failed
SELECT id FROM {outbox}
WHERE status = 'failed'
  AND (%(entity_type)s::text IS NULL OR entity_type = %(entity_type)s)
  AND (%(since_hours)s::float8 IS NULL OR created_at >= now() - make_interval(secs => %(since_hours)s * 3600))
  AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
  AND (%(error_reason)s::text IS NULL OR error_reason = %(error_reason)s)
ORDER BY created_at, id
LIMIT %(limit)s;

-- name: replay_apply
-- failed -> pending.  next_retry_at is spread uniformly over `spread_seconds` so a replay of
-- thousands of rows reaches the sink as a ramp, not a stampede (C17).  error / error_reason are
-- kept on purpose: until the next attempt they still say why the row failed last time.
UPDATE {outbox} AS o
SET status = 'pending', attempts = 0, reclaim_count = 0, owner = NULL, lease_until = NULL,
    processing_started_at = NULL, processed_at = NULL,
    next_retry_at = now() + make_interval(secs => random() * %(spread_seconds)s),
    replay_count = o.replay_count + 1, last_replayed_at = now(),
    last_replayed_by = %(by)s, last_replayed_reason = %(reason)s, updated_at = now()
WHERE o.id = ANY(%(ids)s::uuid[]) AND o.status = 'failed'
RETURNING o.id;

-- name: replay_audit_insert
INSERT INTO outbox_replay_audit (outbox, replayed_by, reason, filters, ids, matched_count, row_count)
VALUES (%(outbox)s, %(by)s, %(reason)s, %(filters)s::jsonb, %(ids)s::uuid[], %(matched)s,
        cardinality(%(ids)s::uuid[]))
RETURNING id, replayed_at;

-- name: replay_notify
-- Delivered by PostgreSQL only when the transaction commits, so a worker never wakes for rows it
-- cannot see yet.
SELECT pg_notify(%(channel)s, '');


-- ===================================================================== rebuild bookkeeping

-- name: rebuild_status_started
INSERT INTO projection_status (projection, last_started_at, updated_at)
VALUES (%(projection)s, now(), now())
ON CONFLICT (projection) DO UPDATE SET last_started_at = now(), updated_at = now();

-- name: rebuild_status_finished
INSERT INTO projection_status (projection, last_started_at, last_finished_at, last_duration_seconds,
                               last_success, last_error, updated_at)
VALUES (%(projection)s, now(), now(), %(duration)s, %(success)s, %(error)s, now())
ON CONFLICT (projection) DO UPDATE
SET last_finished_at = now(), last_duration_seconds = %(duration)s, last_success = %(success)s,
    last_error = %(error)s, updated_at = now();

-- name: rebuild_checkpoint_get
SELECT phase, last_key, options, counts, started_at FROM rebuild_checkpoints
WHERE projection = %(projection)s;

-- name: rebuild_checkpoint_save
INSERT INTO rebuild_checkpoints (projection, phase, last_key, options, counts)
VALUES (%(projection)s, %(phase)s, %(last_key)s, %(options)s::jsonb, %(counts)s::jsonb)
ON CONFLICT (projection) DO UPDATE
SET phase = EXCLUDED.phase, last_key = EXCLUDED.last_key, options = EXCLUDED.options,
    counts = EXCLUDED.counts, updated_at = now();

-- name: rebuild_checkpoint_reset
-- A fresh (not resumed) run: started_at moves too.
INSERT INTO rebuild_checkpoints (projection, phase, last_key, options, counts)
VALUES (%(projection)s, %(phase)s, NULL, %(options)s::jsonb, '{}'::jsonb)
ON CONFLICT (projection) DO UPDATE
SET phase = EXCLUDED.phase, last_key = NULL, options = EXCLUDED.options, counts = '{}'::jsonb,
    started_at = now(), updated_at = now();

-- name: rebuild_checkpoint_clear
DELETE FROM rebuild_checkpoints WHERE projection = %(projection)s;


-- ===================================================================== rebuild search_index

-- name: rebuild_search_source_counts
SELECT (SELECT count(*) FROM books) AS books, (SELECT count(*) FROM blocks) AS blocks,
       (SELECT count(*) FROM search_index) AS search_index;

-- name: rebuild_search_lock_book_page
-- Pages cover every book, deleted or not, so a page boundary never depends on state that can
-- change under us.  FOR SHARE holds off the domain writer, which locks a book FOR UPDATE before it
-- writes the book or any of its blocks.
SELECT id FROM books WHERE id > %(after)s ORDER BY id LIMIT %(limit)s FOR SHARE;

-- name: rebuild_search_block_page
SELECT id, book_id FROM blocks WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: rebuild_search_lock_books
SELECT id FROM books WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR SHARE;

-- name: rebuild_search_live_books
-- Read in a statement of its own, after the locks are held: its snapshot sees every write that
-- committed before we got them, and none can happen until we commit.
SELECT id AS entity_id, library_id, title || E'\n' || summary AS text
FROM books WHERE id = ANY(%(ids)s::uuid[]) AND deleted_at IS NULL ORDER BY id;

-- name: rebuild_search_live_blocks
SELECT bl.id AS entity_id, bk.library_id, bl.content AS text
FROM blocks bl JOIN books bk ON bk.id = bl.book_id
WHERE bl.id = ANY(%(ids)s::uuid[]) AND bl.deleted_at IS NULL AND bk.deleted_at IS NULL
ORDER BY bl.id;

-- name: rebuild_search_apply
-- Upsert the rows whose content differs from the source.  A changed row gets a new version from
-- entity_versions exactly like a domain write (so Elasticsearch's external versions keep growing);
-- greatest() covers rows that exist in search_index without an entity_versions row.  Unchanged
-- rows keep their version.  rank_score: 0 for a new row, an existing score is kept (it is not
-- derived from the source tables).  Returns every input entity with its current version.
WITH src AS (
    SELECT * FROM unnest(%(entity_ids)s::uuid[], %(library_ids)s::uuid[], %(texts)s::text[])
        AS s(entity_id, library_id, text)
), cur AS (
    SELECT s.entity_id, si.event_version,
           (si.id IS NULL OR si.library_id IS DISTINCT FROM s.library_id
            OR si.text IS DISTINCT FROM s.text OR si.snippet IS DISTINCT FROM left(s.text, 200)) AS stale
    FROM src s
    LEFT JOIN search_index si ON si.entity_type = %(entity_type)s AND si.entity_id = s.entity_id
), bumped AS (
    INSERT INTO entity_versions (entity_type, entity_id, version)
    SELECT %(entity_type)s, cur.entity_id, coalesce(cur.event_version, 0) + 1
    FROM cur WHERE cur.stale ORDER BY cur.entity_id
    ON CONFLICT (entity_type, entity_id) DO UPDATE
        SET version = greatest(entity_versions.version + 1, EXCLUDED.version)
    RETURNING entity_id, version
), written AS (
    INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, rank_score, event_version)
    SELECT gen_random_uuid(), %(entity_type)s, src.entity_id, src.library_id, src.text,
           left(src.text, 200), 0, bumped.version
    FROM src JOIN bumped USING (entity_id)
    ON CONFLICT (entity_type, entity_id) DO UPDATE
        SET library_id = EXCLUDED.library_id, text = EXCLUDED.text, snippet = EXCLUDED.snippet,
            event_version = EXCLUDED.event_version, updated_at = now()
        WHERE search_index.event_version <= EXCLUDED.event_version
    RETURNING entity_id, event_version
)
SELECT cur.entity_id, coalesce(written.event_version, cur.event_version) AS event_version,
       written.entity_id IS NOT NULL AS written
FROM cur LEFT JOIN written USING (entity_id)
ORDER BY cur.entity_id;

-- name: rebuild_search_emit
INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version)
SELECT gen_random_uuid(), u.entity_type, u.entity_id, %(op)s, u.event_version
FROM unnest(%(entity_types)s::text[], %(entity_ids)s::uuid[], %(versions)s::bigint[])
    AS u(entity_type, entity_id, event_version);

-- name: rebuild_search_lock_index_page
-- --truncate sweep: lock a page of search_index rows (waiting for any writer holding them) ...
SELECT id FROM search_index WHERE id > %(after)s ORDER BY id LIMIT %(limit)s FOR UPDATE;

-- name: rebuild_search_delete_orphans
-- ... then, in a fresh statement that sees every committed write, delete the rows whose entity is
-- no longer live in the source tables (or is of a type the source does not produce), giving each
-- a new version so the delete sent to Elasticsearch outranks the document it removes.
WITH gone AS (
    DELETE FROM search_index si
    WHERE si.id = ANY(%(ids)s::uuid[])
      AND NOT (
          (si.entity_type = 'book' AND EXISTS (
              SELECT 1 FROM books b WHERE b.id = si.entity_id AND b.deleted_at IS NULL))
          OR (si.entity_type = 'block' AND EXISTS (
              SELECT 1 FROM blocks bl JOIN books b ON b.id = bl.book_id
              WHERE bl.id = si.entity_id AND bl.deleted_at IS NULL AND b.deleted_at IS NULL)))
    RETURNING si.entity_type, si.entity_id, si.event_version
), bumped AS (
    INSERT INTO entity_versions (entity_type, entity_id, version)
    SELECT entity_type, entity_id, event_version + 1 FROM gone ORDER BY entity_type, entity_id
    ON CONFLICT (entity_type, entity_id) DO UPDATE
        SET version = greatest(entity_versions.version + 1, EXCLUDED.version)
    RETURNING entity_type, entity_id, version
)
SELECT entity_type, entity_id, version FROM bumped ORDER BY entity_type, entity_id;


-- ===================================================================== rebuild chronicle_entries

-- name: rebuild_chronicle_source_count
SELECT count(*) FROM chronicle_events;

-- name: rebuild_chronicle_page
-- One keyset page of events projected into chronicle_entries by the same SQL function the worker
-- uses (migration 0004).  FOR KEY SHARE keeps a concurrent hard delete of the book from removing
-- an event between our read and our commit (its outbox delete is then processed after our entry
-- exists).
WITH page AS (
    SELECT id FROM chronicle_events WHERE id > %(after)s ORDER BY id LIMIT %(limit)s FOR KEY SHARE
), written AS (
    SELECT wordloom_project_chronicle_events(ARRAY(SELECT id FROM page), %(projection_version)s) AS id
)
SELECT page.id, written.id IS NOT NULL AS written
FROM page LEFT JOIN written USING (id)
ORDER BY page.id;

-- name: rebuild_chronicle_emit
-- Version 1 = "write this event's entry", the same version the domain writer gives an upsert.
INSERT INTO chronicle_outbox_events (id, entity_type, entity_id, op, event_version)
SELECT gen_random_uuid(), 'chronicle_event', u.id, 'upsert', 1 FROM unnest(%(ids)s::uuid[]) AS u(id);

-- name: rebuild_chronicle_delete_orphans
-- --truncate sweep over one page of entries: an entry whose event no longer exists goes.
WITH page AS (
    SELECT id FROM chronicle_entries WHERE id > %(after)s ORDER BY id LIMIT %(limit)s
), gone AS (
    DELETE FROM chronicle_entries ce USING page
    WHERE ce.id = page.id AND NOT EXISTS (SELECT 1 FROM chronicle_events e WHERE e.id = ce.id)
    RETURNING ce.id
)
SELECT (SELECT id FROM page ORDER BY id DESC LIMIT 1) AS last_id,
       (SELECT count(*) FROM page) AS scanned,
       (SELECT count(*) FROM gone) AS deleted;


-- ===================================================================== rebuild Elasticsearch

-- name: rebuild_es_high_water
-- The moment from which outbox rows are re-read after loading.  A writer's rows carry its
-- transaction's start time, so a transaction still open now can commit rows stamped earlier than
-- now(): go back to the oldest open transaction, and a margin more for clock-free safety.
-- Re-applying too much is harmless (external versions), missing one is not.
SELECT least(
    now() - make_interval(secs => %(margin_seconds)s),
    coalesce((SELECT min(xact_start) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()), now())
) AS high_water;

-- name: rebuild_es_index_count
SELECT count(*) FROM search_index;

-- name: rebuild_es_index_page
SELECT id, entity_type, entity_id, library_id, text, snippet, rank_score, event_version
FROM search_index WHERE id > %(after)s ORDER BY id LIMIT %(limit)s;

-- name: rebuild_es_changed_since
-- Entities named by outbox rows created since the high-water mark, any status, one page at a time.
SELECT entity_type, entity_id FROM search_outbox_events
WHERE created_at >= %(since)s AND (entity_type, entity_id) > (%(after_type)s, %(after_id)s)
GROUP BY entity_type, entity_id
ORDER BY entity_type, entity_id
LIMIT %(limit)s;

-- name: rebuild_es_oldest_outbox_row
SELECT min(created_at) FROM search_outbox_events;

-- name: rebuild_es_sample_rows
SELECT entity_type, entity_id, event_version FROM search_index ORDER BY random() LIMIT %(limit)s;

-- name: rebuild_es_alias_activate
-- Close the open history row(s) of this alias and open one for the index it points at now.
WITH closed AS (
    UPDATE search_alias_history SET deactivated_at = now()
    WHERE alias = %(alias)s AND deactivated_at IS NULL
    RETURNING id
)
INSERT INTO search_alias_history (alias, index_name, action, doc_count, activated_at, deactivated_at)
VALUES (%(alias)s, %(index_name)s, %(action)s, %(doc_count)s, now(), NULL)
RETURNING id;

-- name: rebuild_es_alias_record_copy
-- The copy of a converted concrete index stopped receiving writes when it was copied.
INSERT INTO search_alias_history (alias, index_name, action, doc_count, activated_at, deactivated_at)
VALUES (%(alias)s, %(index_name)s, 'convert', %(doc_count)s, %(at)s, %(at)s);

-- name: rebuild_es_rollback_candidates
-- Indices the alias pointed at before, most recently left first, with when they stopped
-- receiving writes.
SELECT index_name, max(deactivated_at) AS stopped_at FROM search_alias_history
WHERE alias = %(alias)s AND index_name <> %(current)s AND deactivated_at IS NOT NULL
GROUP BY index_name
ORDER BY 2 DESC;


-- ===================================================================== outbox status

-- name: status_outbox_summary
SELECT
    count(*) FILTER (WHERE status = 'pending')    AS pending,
    count(*) FILTER (WHERE status = 'processing') AS processing,
    count(*) FILTER (WHERE status = 'done')       AS done,
    count(*) FILTER (WHERE status = 'failed')     AS failed,
    extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8 AS oldest_pending_age_seconds,
    count(*) FILTER (WHERE status = 'processing' AND (lease_until IS NULL OR lease_until < now())) AS stuck,
    max(processed_at) FILTER (WHERE status = 'done') AS last_success_at
FROM {outbox};

-- name: status_failed_by_reason
SELECT coalesce(error_reason, 'none') AS error_reason, count(*) AS n
FROM {outbox} WHERE status = 'failed'
GROUP BY 1 ORDER BY 2 DESC, 1;

-- name: status_leases
-- Leases still held, one line per worker.
SELECT owner, count(*) AS rows, max(lease_until) AS lease_until
FROM {outbox}
WHERE status = 'processing' AND lease_until >= now()
GROUP BY owner ORDER BY owner;

-- name: status_projections
SELECT projection, last_started_at, last_finished_at, last_duration_seconds, last_success, last_error
FROM projection_status WHERE projection = ANY(%(names)s::text[]) ORDER BY projection;


-- ===================================================================== outbox prune

-- name: prune_cutoff
SELECT now() - make_interval(secs => %(seconds)s) AS cutoff;

-- name: prune_counts
SELECT
    count(*) FILTER (WHERE status = 'done' AND processed_at < %(cutoff)s) AS prunable,
    count(*) FILTER (WHERE status = 'pending')                             AS pending,
    count(*) FILTER (WHERE status = 'processing')                          AS processing,
    count(*) FILTER (WHERE status = 'failed')                              AS failed
FROM {outbox};

-- name: prune_done_batch
-- Only `done` rows, re-checked in the DELETE itself; rows another session holds are skipped.
WITH doomed AS (
    SELECT id FROM {outbox}
    WHERE status = 'done' AND processed_at < %(cutoff)s
    ORDER BY processed_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM {outbox} o USING doomed
    WHERE o.id = doomed.id AND o.status = 'done'
    RETURNING 1
)
SELECT count(*) FROM deleted;


-- ===================================================================== one rebuild at a time

-- name: rebuild_try_lock
-- Session-level: released when the process exits, even by SIGKILL (the connection closes).
SELECT pg_try_advisory_lock(hashtextextended('wordloom.rebuild:' || %(projection)s, 0));

-- name: rebuild_unlock
SELECT pg_advisory_unlock(hashtextextended('wordloom.rebuild:' || %(projection)s, 0));


-- ===================================================================== rebuild-es verification under writes
-- A difference between the new index and search_index is only a defect if it cannot be explained
-- by a change that arrived after the last catch-up began (that change is still on its way).

-- name: rebuild_es_changed_count
SELECT count(*) FROM (
    SELECT DISTINCT entity_type, entity_id FROM search_outbox_events WHERE created_at >= %(since)s
) AS changed;

-- name: rebuild_es_changed_among
SELECT DISTINCT o.entity_type, o.entity_id
FROM search_outbox_events o
JOIN unnest(%(entity_types)s::text[], %(entity_ids)s::uuid[]) AS u(entity_type, entity_id)
  ON o.entity_type = u.entity_type AND o.entity_id = u.entity_id
WHERE o.created_at >= %(since)s;
