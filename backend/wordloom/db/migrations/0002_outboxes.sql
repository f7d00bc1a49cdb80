-- The two transactional outboxes share one shape (CONTRACT.md section 1).  v3 had no CHECKs and no
-- partial index; the claim query below is served by *_claimable_idx over claimable rows only, so
-- millions of `done` rows in history do not slow a claim.

CREATE TABLE IF NOT EXISTS search_outbox_events (
    id                     uuid PRIMARY KEY,
    entity_type            varchar(50) NOT NULL,
    entity_id              uuid NOT NULL,
    op                     varchar(20) NOT NULL CHECK (op IN ('upsert', 'delete')),
    event_version          bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    processed_at           timestamptz NULL,
    error                  text NULL,
    status                 varchar(20) NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    owner                  varchar(120) NULL,
    lease_until            timestamptz NULL,
    attempts               int NOT NULL DEFAULT 0,
    next_retry_at          timestamptz NULL,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    processing_started_at  timestamptz NULL,
    error_reason           varchar(80) NULL,
    replay_count           int NOT NULL DEFAULT 0,
    last_replayed_at       timestamptz NULL,
    last_replayed_by       varchar(120) NULL,
    last_replayed_reason   text NULL,
    traceparent            varchar(512) NULL,
    tracestate             text NULL,
    reclaim_count          int NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS search_outbox_claimable_idx
    ON search_outbox_events (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS search_outbox_processing_idx
    ON search_outbox_events (lease_until) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS search_outbox_failed_idx
    ON search_outbox_events (created_at) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS search_outbox_done_idx
    ON search_outbox_events (processed_at) WHERE status = 'done';

-- Same columns, CHECKs, defaults and partial indexes: the chronicle outbox can never drift.
CREATE TABLE IF NOT EXISTS chronicle_outbox_events (LIKE search_outbox_events INCLUDING ALL);

-- Wake-up: one NOTIFY per statement, with no payload.  A payload could exceed PostgreSQL's 8000
-- byte limit and fail the business transaction (C15); listeners only need to know "look now".
CREATE OR REPLACE FUNCTION wordloom_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS search_outbox_wakeup ON search_outbox_events;
CREATE TRIGGER search_outbox_wakeup AFTER INSERT ON search_outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION wordloom_outbox_notify('wordloom_search_outbox');

DROP TRIGGER IF EXISTS chronicle_outbox_wakeup ON chronicle_outbox_events;
CREATE TRIGGER chronicle_outbox_wakeup AFTER INSERT ON chronicle_outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION wordloom_outbox_notify('wordloom_chronicle_outbox');
