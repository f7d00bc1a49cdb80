-- Statements of the labs inserters (wordloom.labs.inserters): they manufacture pending outbox rows
-- for drills and for the docs-as-tests, following the same version rules as the domain writer.


-- name: labs_bump_entity_version
-- The entity's next version, exactly as domain_index_entities computes it (the row lock on
-- entity_versions orders versions by commit).  An explicit version (OUTBOX_EVENT_VERSION) is
-- recorded too, as the highest version ever given, so later writes keep growing past it.
INSERT INTO entity_versions (entity_type, entity_id, version)
VALUES (%(entity_type)s, %(entity_id)s, coalesce(%(explicit_version)s::bigint, 1))
ON CONFLICT (entity_type, entity_id) DO UPDATE
    SET version = CASE WHEN %(explicit_version)s::bigint IS NULL THEN entity_versions.version + 1
                       ELSE greatest(entity_versions.version, %(explicit_version)s::bigint) END
RETURNING version;

-- name: labs_upsert_search_index_row
-- Same anti-regression guard as every writer: only an equal or newer event_version overwrites.
INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, event_version)
VALUES (gen_random_uuid(), %(entity_type)s, %(entity_id)s, %(library_id)s, %(text)s, left(%(text)s, 200),
        %(event_version)s)
ON CONFLICT (entity_type, entity_id) DO UPDATE
    SET library_id = EXCLUDED.library_id, text = EXCLUDED.text, snippet = EXCLUDED.snippet,
        event_version = EXCLUDED.event_version, updated_at = now()
    WHERE search_index.event_version <= EXCLUDED.event_version;

-- name: labs_remove_search_index_row
-- A delete event removes the projection row it stands for (as domain_unindex_entities does), or the
-- worker, which transfers the current state, would re-create the document.
DELETE FROM search_index
WHERE entity_type = %(entity_type)s AND entity_id = %(entity_id)s AND event_version <= %(event_version)s;

-- name: labs_chronicle_rows_of_book
-- The chronicle events of one book and their outbox rows, oldest first.
SELECT e.id AS chronicle_event_id, e.event_type, o.id AS outbox_id
FROM chronicle_events e
JOIN chronicle_outbox_events o ON o.entity_id = e.id AND o.entity_type = 'chronicle_event'
WHERE e.book_id = %(book_id)s
ORDER BY e.occurred_at, o.created_at, o.id;

-- name: labs_search_outbox_rows_of_entity
SELECT id FROM search_outbox_events
WHERE entity_type = %(entity_type)s AND entity_id = %(entity_id)s
ORDER BY created_at, id;
