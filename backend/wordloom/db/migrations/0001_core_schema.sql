-- Source-of-truth tables, projections and both outboxes (CONTRACT.md section 1).
-- Every timestamp is timestamptz and defaults to the database clock, so no worker's local time
-- zone can shift a version, a retry time or a lag figure (C10).

CREATE TABLE IF NOT EXISTS environment_sentinel (
    id          int PRIMARY KEY CHECK (id = 1),
    project     varchar(80) NOT NULL DEFAULT 'wordloom',
    env         varchar(20) NOT NULL CHECK (env IN ('dev', 'test', 'sandbox')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS libraries (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bookshelves (
    id          uuid PRIMARY KEY,
    library_id  uuid NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bookshelves_library_idx ON bookshelves (library_id);

CREATE TABLE IF NOT EXISTS books (
    id            uuid PRIMARY KEY,
    library_id    uuid NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    bookshelf_id  uuid NULL REFERENCES bookshelves(id) ON DELETE SET NULL,
    title         text NOT NULL CHECK (length(title) > 0),
    summary       text NOT NULL DEFAULT '',
    deleted_at    timestamptz NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS books_library_idx ON books (library_id);

CREATE TABLE IF NOT EXISTS blocks (
    id          uuid PRIMARY KEY,
    book_id     uuid NOT NULL REFERENCES books(id) ON DELETE CASCADE,
    position    int NOT NULL DEFAULT 0,
    content     text NOT NULL,
    deleted_at  timestamptz NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS blocks_book_idx ON blocks (book_id, position);

CREATE TABLE IF NOT EXISTS tags (
    id          uuid PRIMARY KEY,
    library_id  uuid NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (library_id, name)
);

CREATE TABLE IF NOT EXISTS book_tags (
    book_id  uuid NOT NULL REFERENCES books(id) ON DELETE CASCADE,
    tag_id   uuid NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (book_id, tag_id)
);

-- One counter per searchable entity.  The writer bumps it with INSERT .. ON CONFLICT DO UPDATE,
-- which row-locks it until commit, so versions of one entity grow in commit order.
CREATE TABLE IF NOT EXISTS entity_versions (
    entity_type  varchar(50) NOT NULL,
    entity_id    uuid NOT NULL,
    version      bigint NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
);

CREATE TABLE IF NOT EXISTS search_index (
    id             uuid PRIMARY KEY,
    entity_type    varchar(50) NOT NULL,
    entity_id      uuid NOT NULL,
    library_id     uuid NULL,
    text           text NOT NULL DEFAULT '',
    snippet        text NOT NULL DEFAULT '',
    rank_score     double precision NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    event_version  bigint NOT NULL DEFAULT 0,
    UNIQUE (entity_type, entity_id)
);

CREATE TABLE IF NOT EXISTS chronicle_events (
    id              uuid PRIMARY KEY,
    event_type      varchar(64) NOT NULL,
    book_id         uuid NOT NULL REFERENCES books(id) ON DELETE CASCADE,
    block_id        uuid NULL REFERENCES blocks(id) ON DELETE SET NULL,
    actor_id        uuid NULL,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    schema_version  int NOT NULL DEFAULT 1,
    provenance      varchar(32) NOT NULL DEFAULT 'unknown',
    source          varchar(32) NOT NULL DEFAULT 'unknown',
    actor_kind      varchar(32) NOT NULL DEFAULT 'unknown',
    correlation_id  uuid NULL
);
CREATE INDEX IF NOT EXISTS chronicle_events_book_idx ON chronicle_events (book_id, occurred_at DESC);

CREATE TABLE IF NOT EXISTS chronicle_entries (
    id                  uuid PRIMARY KEY,
    event_type          varchar(64) NOT NULL,
    book_id             uuid NOT NULL,
    block_id            uuid NULL,
    actor_id            uuid NULL,
    occurred_at         timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
    summary             text NOT NULL,
    projection_version  int NOT NULL DEFAULT 1,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS chronicle_entries_book_idx ON chronicle_entries (book_id, occurred_at DESC, id);

CREATE TABLE IF NOT EXISTS projection_status (
    projection              varchar(80) PRIMARY KEY,
    last_started_at         timestamptz NULL,
    last_finished_at        timestamptz NULL,
    last_duration_seconds   double precision NULL,
    last_success            boolean NULL,
    last_error              text NULL,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
