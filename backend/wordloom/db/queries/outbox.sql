-- Every statement the outbox engine runs against search_outbox_events / chronicle_outbox_events
-- ({outbox} is filled from a fixed whitelist by wordloom.db.queries), plus the reads each sink
-- makes of its source table.
--
-- Times: every timestamp is computed here, by the database clock, never in Python (C10).
-- Guards: every write on a claimed row requires `owner = me AND status = 'processing'` and a live
-- lease; callers compare the returned ids with the ids they meant to change, so a lost lease is
-- seen and counted instead of being taken for success (a v3 defect).  clock_timestamp() (not now())
-- is used for lease checks because a sink may run them at the end of a long transaction.


-- name: outbox_insert_event
-- One event, for tools, labs and tests (the API writes its rows in domain.sql, in its own transaction).
INSERT INTO {outbox} (id, entity_type, entity_id, op, event_version, traceparent, tracestate)
VALUES (gen_random_uuid(), %(entity_type)s, %(entity_id)s, %(op)s, %(event_version)s,
        %(traceparent)s, %(tracestate)s)
RETURNING id;

-- name: outbox_claim_batch
-- The oldest claimable rows that never lost a holder, skipping rows another worker is claiming
-- right now.  The literal `reclaim_count = 0` matches the partial index *_claim_clean_idx
-- (created_at, id) exactly, so a claim reads only the rows it takes, whatever the backlog
-- (a parameterised filter made PostgreSQL walk and sort the whole pending set: O(backlog)).
UPDATE {outbox} AS o
SET status = 'processing', owner = %(owner)s,
    lease_until = now() + make_interval(secs => %(lease_seconds)s),
    processing_started_at = now(), updated_at = now()
WHERE o.id IN (
    SELECT id FROM {outbox}
    WHERE status = 'pending' AND reclaim_count = 0
      AND (next_retry_at IS NULL OR next_retry_at <= now())
    ORDER BY created_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING o.id, o.entity_type, o.entity_id, o.op, o.event_version, o.attempts, o.reclaim_count,
          o.created_at, o.traceparent, o.tracestate;

-- name: outbox_claim_suspects
-- Rows that were reclaimed before (their holder died), served by *_claim_suspect_idx.  The runner
-- takes them one at a time, so a row that kills its worker takes no innocent batch-mates down
-- with it (C12).
UPDATE {outbox} AS o
SET status = 'processing', owner = %(owner)s,
    lease_until = now() + make_interval(secs => %(lease_seconds)s),
    processing_started_at = now(), updated_at = now()
WHERE o.id IN (
    SELECT id FROM {outbox}
    WHERE status = 'pending' AND reclaim_count > 0
      AND (next_retry_at IS NULL OR next_retry_at <= now())
    ORDER BY created_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING o.id, o.entity_type, o.entity_id, o.op, o.event_version, o.attempts, o.reclaim_count,
          o.created_at, o.traceparent, o.tracestate;

-- name: outbox_renew_lease
UPDATE {outbox}
SET lease_until = clock_timestamp() + make_interval(secs => %(lease_seconds)s), updated_at = now()
WHERE id = ANY(%(ids)s::uuid[]) AND owner = %(owner)s AND status = 'processing'
  AND lease_until > clock_timestamp()
RETURNING id;

-- name: outbox_settled_by
-- Rows the owner already settled (done or failed keep their owner).  The lease keeper asks when a
-- renewal missed rows, to tell "the batch finished first" from "the lease was lost".
SELECT id FROM {outbox}
WHERE id = ANY(%(ids)s::uuid[]) AND owner = %(owner)s AND status IN ('done', 'failed');

-- name: outbox_ack_done
-- The owner stays on a done row: it says which worker delivered it.
UPDATE {outbox}
SET status = 'done', processed_at = clock_timestamp(), updated_at = clock_timestamp(),
    lease_until = NULL, next_retry_at = NULL, error = NULL, error_reason = NULL
WHERE id = ANY(%(ids)s::uuid[]) AND owner = %(owner)s AND status = 'processing'
  AND lease_until > clock_timestamp()
RETURNING id;

-- name: outbox_schedule_retry
-- Per-row delay, error and reason (rows of one batch fail for different reasons).
UPDATE {outbox} AS o
SET status = 'pending', attempts = o.attempts + 1,
    next_retry_at = clock_timestamp() + make_interval(secs => r.delay_seconds),
    error = r.error, error_reason = r.reason, owner = NULL, lease_until = NULL,
    processing_started_at = NULL, updated_at = clock_timestamp()
FROM unnest(%(ids)s::uuid[], %(delays)s::float8[], %(errors)s::text[], %(reasons)s::text[])
    AS r(id, delay_seconds, error, reason)
WHERE o.id = r.id AND o.owner = %(owner)s AND o.status = 'processing'
  AND o.lease_until > clock_timestamp()
RETURNING o.id;

-- name: outbox_mark_failed
UPDATE {outbox} AS o
SET status = 'failed', attempts = o.attempts + 1, error = r.error, error_reason = r.reason,
    lease_until = NULL, next_retry_at = NULL, updated_at = clock_timestamp()
FROM unnest(%(ids)s::uuid[], %(errors)s::text[], %(reasons)s::text[]) AS r(id, error, reason)
WHERE o.id = r.id AND o.owner = %(owner)s AND o.status = 'processing'
  AND o.lease_until > clock_timestamp()
RETURNING o.id;

-- name: outbox_reclaim_expired
-- Rows whose holder vanished (lease expired, no lease at all, or processing longer than allowed)
-- go back to pending by any worker, counting an attempt and a reclaim.  A row reclaimed more than
-- max_reclaims times is the kind that kills its worker every time (C12): it becomes failed with
-- reason reclaim_exhausted instead of looping forever.
UPDATE {outbox} AS o
SET status = CASE WHEN o.reclaim_count + 1 > %(max_reclaims)s THEN 'failed' ELSE 'pending' END,
    error_reason = CASE WHEN o.reclaim_count + 1 > %(max_reclaims)s THEN 'reclaim_exhausted'
                        ELSE 'lease_expired' END,
    error = CASE WHEN o.reclaim_count + 1 > %(max_reclaims)s
                 THEN 'reclaimed ' || (o.reclaim_count + 1) || ' times; last owner ' || coalesce(o.owner, '?')
                 ELSE 'lease expired; owner ' || coalesce(o.owner, '?') END,
    attempts = o.attempts + 1, reclaim_count = o.reclaim_count + 1,
    owner = NULL, lease_until = NULL, processing_started_at = NULL, next_retry_at = NULL,
    updated_at = now()
WHERE o.id IN (
    SELECT id FROM {outbox}
    WHERE status = 'processing'
      AND (lease_until IS NULL OR lease_until < now()
           OR processing_started_at < now() - make_interval(secs => %(max_processing_seconds)s))
    ORDER BY created_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING o.id, o.status, o.op;

-- name: outbox_release_owned
-- Graceful shutdown: hand this worker's rows back at once, without counting an attempt.
UPDATE {outbox}
SET status = 'pending', owner = NULL, lease_until = NULL, processing_started_at = NULL,
    updated_at = now()
WHERE owner = %(owner)s AND status = 'processing'
RETURNING id;

-- name: outbox_backlog_stats
-- Lag counts what is still owed (pending + processing); failed rows are reported on their own,
-- so the lag returns to 0 once the pipeline is drained (v3 counted failed rows as lag).
SELECT
    count(*) FILTER (WHERE status IN ('pending', 'processing'))                    AS lag,
    coalesce(extract(epoch FROM now() - min(created_at)
             FILTER (WHERE status IN ('pending', 'processing'))), 0)::float8         AS oldest_age_seconds,
    count(*) FILTER (WHERE status = 'processing')                                   AS inflight,
    count(*) FILTER (WHERE status = 'processing'
                     AND (lease_until IS NULL OR lease_until < now()))              AS stuck,
    count(*) FILTER (WHERE status = 'failed')                                       AS failed
FROM {outbox}
WHERE status IN ('pending', 'processing', 'failed');

-- name: outbox_rebuild_status
-- The last finished rebuild of each named projection (written by the rebuild tools through
-- rebuild_status_started / rebuild_status_finished in ops.sql), for the worker's
-- projection_rebuild_* gauges.  A row whose rebuild never finished has last_finished_at NULL.
SELECT projection,
       extract(epoch FROM last_finished_at)::float8 AS last_finished_epoch,
       last_duration_seconds,
       last_success
FROM projection_status
WHERE projection = ANY(%(names)s::text[]);

-- name: outbox_events_by_id
SELECT id, entity_type, entity_id, op, event_version, status, owner, attempts, reclaim_count,
       error, error_reason, created_at, processed_at, next_retry_at, lease_until, replay_count
FROM {outbox} WHERE id = ANY(%(ids)s::uuid[]);


-- name: outbox_search_lock_entities
-- Serialise every writer of the same Elasticsearch document: two workers never transfer the state
-- of one entity at the same time, so a slow worker can never overwrite a newer state with an older
-- one (the embedded server keeps no delete tombstones, so ES versions alone do not suffice; C11).
-- Keys are taken in sorted order so two batches sharing entities cannot deadlock.
SELECT count(pg_advisory_xact_lock(k.key))
FROM (
    SELECT DISTINCT hashtextextended(u.entity_type || ':' || u.entity_id::text, 0) AS key
    FROM unnest(%(entity_types)s::text[], %(entity_ids)s::uuid[]) AS u(entity_type, entity_id)
    ORDER BY key
) AS k;

-- name: outbox_search_current_state
-- The current state of each entity: its search_index row, or none (deleted).  For a deleted entity
-- the highest version the writer ever gave it is the version its delete must carry.
SELECT u.entity_type, u.entity_id,
       s.id IS NOT NULL AS present, s.library_id, s.text, s.snippet, s.rank_score, s.event_version,
       v.version AS known_version
FROM unnest(%(entity_types)s::text[], %(entity_ids)s::uuid[]) AS u(entity_type, entity_id)
LEFT JOIN search_index s ON s.entity_type = u.entity_type AND s.entity_id = u.entity_id
LEFT JOIN entity_versions v ON v.entity_type = u.entity_type AND v.entity_id = u.entity_id;


-- name: outbox_chronicle_project
-- The whole chronicle sink in one statement, one round trip per batch (it was three: read the
-- events, project, delete orphans).  The projection itself is the SQL function of migration 0004
-- (shared with the rebuild: projection_version guard, IS DISTINCT FROM no-op, summary format).
-- An entry whose event is gone (the book was hard-deleted; that delete also queued a chronicle
-- outbox row) is removed.  One row per distinct event id says what happened to it:
--   written   - the function wrote its entry;
--   removed   - the event is gone and so is its entry now;
--   unchanged - the event exists, the entry already had this state or a higher projection_version;
--   missing   - no event and no entry.
-- The DELETE and the function touch disjoint entries (event present vs event absent), so their
-- order inside the statement does not matter; the DELETE runs to completion whatever is read of it,
-- and the function's final INSERT ... RETURNING runs to completion on its first (only) call.
WITH batch AS (
    SELECT DISTINCT b.id FROM unnest(%(ids)s::uuid[]) AS b(id)
),
removed AS (
    DELETE FROM chronicle_entries ce
    WHERE ce.id = ANY(%(ids)s::uuid[])
      AND NOT EXISTS (SELECT 1 FROM chronicle_events e WHERE e.id = ce.id)
    RETURNING ce.id
),
written AS MATERIALIZED (
    SELECT w.id FROM wordloom_project_chronicle_events(%(ids)s::uuid[], %(projection_version)s) AS w(id)
)
SELECT b.id,
       CASE WHEN w.id IS NOT NULL THEN 'written'
            WHEN r.id IS NOT NULL THEN 'removed'
            WHEN e.id IS NOT NULL THEN 'unchanged'
            ELSE 'missing' END AS outcome
FROM batch b
LEFT JOIN written w ON w.id = b.id
LEFT JOIN removed r ON r.id = b.id
LEFT JOIN chronicle_events e ON e.id = b.id;


-- name: outbox_chronicle_deliver_in_claim
-- The chronicle worker's usual batch, whole, in one statement and so one transaction: lock the
-- oldest clean due rows (SKIP LOCKED, as outbox_claim_batch), project their events (the same
-- function and orphan removal as outbox_chronicle_project) and settle the rows.  The sink lives in
-- this database, so no lease is needed while it works: the row locks are the claim, and a worker
-- that dies mid-statement leaves its rows pending as they were, with nothing half-written.  It
-- writes each outbox row once (pending -> done) where claim + ack write it twice.
-- Rows reclaimed before (suspects) are not taken here: the runner gives them the durable claim,
-- one at a time, so a row that crashes its worker is counted and ends failed (C12).
-- op is CHECKed to upsert|delete; a row with another op (a dropped constraint) fails unknown_op,
-- as in the sink.  One result row per claimed row: its fields, what happened to its event (as in
-- outbox_chronicle_project, or unknown_op) and whether the row was settled.
WITH claimed AS MATERIALIZED (
    SELECT o.id, o.entity_type, o.entity_id, o.op, o.event_version, o.attempts, o.reclaim_count,
           o.created_at, o.traceparent, o.tracestate
    FROM chronicle_outbox_events o
    WHERE o.status = 'pending' AND o.reclaim_count = 0
      AND (o.next_retry_at IS NULL OR o.next_retry_at <= now())
    ORDER BY o.created_at, o.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
batch AS MATERIALIZED (
    SELECT DISTINCT c.entity_id AS id FROM claimed c WHERE c.op IN ('upsert', 'delete')
),
removed AS (
    DELETE FROM chronicle_entries ce
    WHERE ce.id = ANY(ARRAY(SELECT id FROM batch))  -- an array: served by the primary key (IN (SELECT ..) seq-scanned the table)
      AND NOT EXISTS (SELECT 1 FROM chronicle_events e WHERE e.id = ce.id)
    RETURNING ce.id
),
written AS MATERIALIZED (
    SELECT w.id
    FROM wordloom_project_chronicle_events(ARRAY(SELECT id FROM batch), %(projection_version)s) AS w(id)
),
settled AS (
    UPDATE chronicle_outbox_events o
    SET status = CASE WHEN c.op IN ('upsert', 'delete') THEN 'done' ELSE 'failed' END,
        owner = %(owner)s, processing_started_at = now(),
        processed_at = CASE WHEN c.op IN ('upsert', 'delete') THEN clock_timestamp() END,
        attempts = CASE WHEN c.op IN ('upsert', 'delete') THEN o.attempts ELSE o.attempts + 1 END,
        error = CASE WHEN c.op IN ('upsert', 'delete') THEN NULL ELSE 'unknown op ' || quote_literal(c.op) END,
        error_reason = CASE WHEN c.op IN ('upsert', 'delete') THEN NULL ELSE 'unknown_op' END,
        lease_until = NULL, next_retry_at = NULL, updated_at = clock_timestamp()
    FROM claimed c
    WHERE o.id = c.id
    RETURNING o.id
)
SELECT c.id, c.entity_type, c.entity_id, c.op, c.event_version, c.attempts, c.reclaim_count,
       c.created_at, c.traceparent, c.tracestate,
       CASE WHEN c.op NOT IN ('upsert', 'delete') THEN 'unknown_op'
            WHEN w.id IS NOT NULL THEN 'written'
            WHEN r.id IS NOT NULL THEN 'removed'
            WHEN e.id IS NOT NULL THEN 'unchanged'
            ELSE 'missing' END AS outcome,
       s.id IS NOT NULL AS settled
FROM claimed c
LEFT JOIN written w ON w.id = c.entity_id
LEFT JOIN removed r ON r.id = c.entity_id
LEFT JOIN settled s ON s.id = c.id
LEFT JOIN chronicle_events e ON e.id = c.entity_id
ORDER BY c.created_at, c.id;
