-- How a chronicle event becomes its chronicle_entries row, defined once (summary format included):
-- the chronicle worker calls it with the events of its batch, the rebuild with a keyset page.
-- State transfer from chronicle_events.  The guard keeps a higher projection_version from being
-- overwritten by a lower one; the IS DISTINCT FROM clause makes a redelivery a true no-op
-- (updated_at untouched), so the same batch twice leaves byte-identical rows (C04).
-- Returns the ids of the entries it really wrote.
CREATE OR REPLACE FUNCTION wordloom_project_chronicle_events(p_event_ids uuid[], p_projection_version int)
RETURNS SETOF uuid
LANGUAGE sql
AS $fn$
    INSERT INTO chronicle_entries AS ce
        (id, event_type, book_id, block_id, actor_id, occurred_at, created_at, payload, summary,
         projection_version, updated_at)
    SELECT e.id, e.event_type, e.book_id, e.block_id, e.actor_id, e.occurred_at, e.created_at, e.payload,
           e.event_type || ' (book=' || e.book_id::text
               || coalesce(', block=' || e.block_id::text, '') || ')',
           p_projection_version, now()
    FROM chronicle_events e
    WHERE e.id = ANY(p_event_ids)
    ON CONFLICT (id) DO UPDATE
    SET event_type = EXCLUDED.event_type, book_id = EXCLUDED.book_id, block_id = EXCLUDED.block_id,
        actor_id = EXCLUDED.actor_id, occurred_at = EXCLUDED.occurred_at, created_at = EXCLUDED.created_at,
        payload = EXCLUDED.payload, summary = EXCLUDED.summary,
        projection_version = EXCLUDED.projection_version, updated_at = EXCLUDED.updated_at
    WHERE ce.projection_version <= EXCLUDED.projection_version
      AND (ce.event_type, ce.book_id, ce.block_id, ce.actor_id, ce.occurred_at, ce.created_at, ce.payload,
           ce.summary, ce.projection_version)
          IS DISTINCT FROM
          (EXCLUDED.event_type, EXCLUDED.book_id, EXCLUDED.block_id, EXCLUDED.actor_id, EXCLUDED.occurred_at,
           EXCLUDED.created_at, EXCLUDED.payload, EXCLUDED.summary, EXCLUDED.projection_version)
    RETURNING ce.id
$fn$;
