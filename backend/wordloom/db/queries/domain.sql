-- Statements of the single write path (wordloom.domain) and of the API's reads.
-- Set-based on purpose: one statement writes any number of rows (unnest over arrays), so a
-- book with thousands of blocks is a handful of round trips, not thousands.


-- name: domain_index_entities
-- Bump each entity's version (the row lock on entity_versions orders versions by commit), upsert
-- its search_index row with the anti-regression guard, and queue one search outbox upsert each.
WITH src AS (
    SELECT * FROM unnest(%(entity_ids)s::uuid[], %(library_ids)s::uuid[], %(texts)s::text[])
        AS s(entity_id, library_id, text)
), bumped AS (
    INSERT INTO entity_versions (entity_type, entity_id, version)
    SELECT %(entity_type)s, entity_id, 1 FROM src ORDER BY entity_id
    ON CONFLICT (entity_type, entity_id) DO UPDATE SET version = entity_versions.version + 1
    RETURNING entity_id, version
), indexed AS (
    INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, event_version)
    SELECT gen_random_uuid(), %(entity_type)s, src.entity_id, src.library_id, src.text,
           left(src.text, 200), bumped.version
    FROM src JOIN bumped USING (entity_id)
    ON CONFLICT (entity_type, entity_id) DO UPDATE
        SET library_id = EXCLUDED.library_id, text = EXCLUDED.text, snippet = EXCLUDED.snippet,
            event_version = EXCLUDED.event_version, updated_at = now()
        WHERE search_index.event_version <= EXCLUDED.event_version
)
INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version, traceparent, tracestate)
SELECT gen_random_uuid(), %(entity_type)s, entity_id, 'upsert', version, %(traceparent)s, %(tracestate)s
FROM bumped
RETURNING entity_id, event_version;

-- name: domain_unindex_entities
-- Removal from search: bump the version, drop the search_index row, queue a search outbox delete.
WITH bumped AS (
    INSERT INTO entity_versions (entity_type, entity_id, version)
    SELECT %(entity_type)s, u.id, 1 FROM unnest(%(entity_ids)s::uuid[]) AS u(id) ORDER BY u.id
    ON CONFLICT (entity_type, entity_id) DO UPDATE SET version = entity_versions.version + 1
    RETURNING entity_id, version
), removed AS (
    DELETE FROM search_index s USING bumped
    WHERE s.entity_type = %(entity_type)s AND s.entity_id = bumped.entity_id
      AND s.event_version <= bumped.version
)
INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version, traceparent, tracestate)
SELECT gen_random_uuid(), %(entity_type)s, entity_id, 'delete', version, %(traceparent)s, %(tracestate)s
FROM bumped
RETURNING entity_id, event_version;

-- name: domain_chronicle_record
-- One chronicle event per (book, block, payload) triple and its chronicle outbox row.
-- clock_timestamp() (not now()) so several events of one transaction keep their order.
WITH ev AS (
    INSERT INTO chronicle_events (id, event_type, book_id, block_id, actor_id, payload, occurred_at,
                                  provenance, source, actor_kind, correlation_id)
    SELECT gen_random_uuid(), %(event_type)s, e.book_id, e.block_id, %(actor_id)s, e.payload::jsonb,
           clock_timestamp(), %(provenance)s, %(source)s, %(actor_kind)s, %(correlation_id)s
    FROM unnest(%(book_ids)s::uuid[], %(block_ids)s::uuid[], %(payloads)s::text[]) AS e(book_id, block_id, payload)
    RETURNING id
)
INSERT INTO chronicle_outbox_events (id, entity_type, entity_id, op, event_version, traceparent, tracestate)
SELECT gen_random_uuid(), 'chronicle_event', id, 'upsert', 1, %(traceparent)s, %(tracestate)s FROM ev
RETURNING entity_id;

-- name: domain_chronicle_forget_books
-- Before books are hard-deleted their chronicle events cascade away; tell the chronicle worker
-- to remove the matching entries.  Version 2: a chronicle event is written once (1), removed once.
INSERT INTO chronicle_outbox_events (id, entity_type, entity_id, op, event_version, traceparent, tracestate)
SELECT gen_random_uuid(), 'chronicle_event', ce.id, 'delete', 2, %(traceparent)s, %(tracestate)s
FROM chronicle_events ce WHERE ce.book_id = ANY(%(book_ids)s::uuid[])
RETURNING entity_id;


-- name: domain_library_insert
INSERT INTO libraries (id, name) VALUES (%(id)s, %(name)s)
RETURNING id, name, created_at, updated_at;

-- name: domain_library_get
SELECT id, name, created_at, updated_at FROM libraries WHERE id = %(id)s;

-- name: domain_library_lock
SELECT id, name, created_at, updated_at FROM libraries WHERE id = %(id)s FOR UPDATE;

-- name: domain_library_by_name
SELECT id, name, created_at, updated_at FROM libraries WHERE name = %(name)s ORDER BY created_at, id LIMIT 1;

-- name: domain_library_rename
UPDATE libraries SET name = %(name)s, updated_at = now() WHERE id = %(id)s
RETURNING id, name, created_at, updated_at;

-- name: domain_library_book_ids
SELECT id FROM books WHERE library_id = %(id)s ORDER BY id;

-- name: domain_library_delete
DELETE FROM libraries WHERE id = %(id)s;


-- name: domain_bookshelf_insert
INSERT INTO bookshelves (id, library_id, name) VALUES (%(id)s, %(library_id)s, %(name)s)
RETURNING id, library_id, name, created_at, updated_at;

-- name: domain_bookshelf_get
SELECT id, library_id, name, created_at, updated_at FROM bookshelves WHERE id = %(id)s;

-- name: domain_bookshelf_rename
UPDATE bookshelves SET name = %(name)s, updated_at = now() WHERE id = %(id)s
RETURNING id, library_id, name, created_at, updated_at;

-- name: domain_bookshelf_delete
DELETE FROM bookshelves WHERE id = %(id)s RETURNING id;


-- name: domain_book_insert
INSERT INTO books (id, library_id, bookshelf_id, title, summary)
VALUES (%(id)s, %(library_id)s, %(bookshelf_id)s, %(title)s, %(summary)s)
RETURNING id, library_id, bookshelf_id, title, summary, deleted_at, created_at, updated_at;

-- name: domain_book_get
SELECT id, library_id, bookshelf_id, title, summary, deleted_at, created_at, updated_at
FROM books WHERE id = %(id)s;

-- name: domain_book_lock
SELECT id, library_id, bookshelf_id, title, summary, deleted_at, created_at, updated_at
FROM books WHERE id = %(id)s FOR UPDATE;

-- name: domain_book_update
UPDATE books SET title = %(title)s, summary = %(summary)s, updated_at = now() WHERE id = %(id)s
RETURNING id, library_id, bookshelf_id, title, summary, deleted_at, created_at, updated_at;

-- name: domain_book_set_deleted
-- deleted=false restores.  The database clock stamps the time, never a client's.
UPDATE books SET deleted_at = CASE WHEN %(deleted)s THEN now() END, updated_at = now() WHERE id = %(id)s
RETURNING id, library_id, bookshelf_id, title, summary, deleted_at, created_at, updated_at;

-- name: domain_book_ids_by_title
SELECT id FROM books WHERE library_id = %(library_id)s AND title = %(title)s ORDER BY id FOR UPDATE;

-- name: domain_books_delete
DELETE FROM books WHERE id = ANY(%(ids)s::uuid[]);

-- name: domain_book_live_block_ids
SELECT id, content FROM blocks WHERE book_id = %(book_id)s AND deleted_at IS NULL ORDER BY position, id;

-- name: domain_books_all_block_ids
SELECT id FROM blocks WHERE book_id = ANY(%(book_ids)s::uuid[]) ORDER BY id;

-- name: domain_book_blocks_list
SELECT id, book_id, position, content, deleted_at, created_at, updated_at
FROM blocks WHERE book_id = %(book_id)s AND (%(include_deleted)s OR deleted_at IS NULL)
ORDER BY position, id;


-- name: domain_block_next_position
SELECT COALESCE(max(position) + 1, 0) AS next_position FROM blocks WHERE book_id = %(book_id)s;

-- name: domain_blocks_insert
INSERT INTO blocks (id, book_id, position, content)
SELECT b.id, %(book_id)s, b.position, b.content
FROM unnest(%(ids)s::uuid[], %(positions)s::int[], %(contents)s::text[]) AS b(id, position, content)
RETURNING id, book_id, position, content, deleted_at, created_at, updated_at;

-- name: domain_block_get
SELECT id, book_id, position, content, deleted_at, created_at, updated_at FROM blocks WHERE id = %(id)s;

-- name: domain_block_lock
SELECT id, book_id, position, content, deleted_at, created_at, updated_at FROM blocks WHERE id = %(id)s FOR UPDATE;

-- name: domain_block_update
UPDATE blocks SET content = %(content)s, position = %(position)s, updated_at = now() WHERE id = %(id)s
RETURNING id, book_id, position, content, deleted_at, created_at, updated_at;

-- name: domain_block_set_deleted
UPDATE blocks SET deleted_at = CASE WHEN %(deleted)s THEN now() END, updated_at = now() WHERE id = %(id)s
RETURNING id, book_id, position, content, deleted_at, created_at, updated_at;


-- name: domain_tag_insert
INSERT INTO tags (id, library_id, name) VALUES (%(id)s, %(library_id)s, %(name)s)
RETURNING id, library_id, name, created_at, updated_at;

-- name: domain_tag_get
SELECT id, library_id, name, created_at, updated_at FROM tags WHERE id = %(id)s;

-- name: domain_tag_rename
UPDATE tags SET name = %(name)s, updated_at = now() WHERE id = %(id)s
RETURNING id, library_id, name, created_at, updated_at;

-- name: domain_tag_book_ids
SELECT book_id FROM book_tags WHERE tag_id = %(id)s ORDER BY book_id;

-- name: domain_tag_delete
DELETE FROM tags WHERE id = %(id)s;

-- name: domain_book_tag_attach
INSERT INTO book_tags (book_id, tag_id) VALUES (%(book_id)s, %(tag_id)s)
ON CONFLICT DO NOTHING RETURNING book_id;

-- name: domain_book_tag_detach
DELETE FROM book_tags WHERE book_id = %(book_id)s AND tag_id = %(tag_id)s RETURNING book_id;

-- name: domain_book_tags_list
SELECT t.id, t.library_id, t.name, t.created_at, t.updated_at
FROM book_tags bt JOIN tags t ON t.id = bt.tag_id WHERE bt.book_id = %(book_id)s ORDER BY t.name;


-- name: domain_chronicle_page
SELECT id, event_type, book_id, block_id, actor_id, occurred_at, created_at, payload, summary,
       projection_version
FROM chronicle_entries WHERE book_id = %(book_id)s
ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: domain_chronicle_count
SELECT count(*) FROM chronicle_entries WHERE book_id = %(book_id)s;

-- name: domain_search_hits_resolve
-- The live entities behind search hits, with their book; soft-deleted or vanished ones are absent.
SELECT 'book' AS entity_type, b.id AS entity_id, b.id AS book_id, b.title AS book_title
FROM books b WHERE b.id = ANY(%(book_ids)s::uuid[]) AND b.deleted_at IS NULL
UNION ALL
SELECT 'block', bl.id, b.id, b.title
FROM blocks bl JOIN books b ON b.id = bl.book_id
WHERE bl.id = ANY(%(block_ids)s::uuid[]) AND bl.deleted_at IS NULL AND b.deleted_at IS NULL;
