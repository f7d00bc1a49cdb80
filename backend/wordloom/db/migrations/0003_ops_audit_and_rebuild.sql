-- Operations tools (wordloom.ops): the replay audit trail, rebuild checkpoints for --resume, and
-- the history of which physical index the search alias pointed at (for rebuild-es --rollback).

-- One row per real replay (never for a dry run).  Append-only: on-call people and auditors must be
-- able to trust that nobody rewrote who replayed what and why, so UPDATE/DELETE/TRUNCATE are refused.
CREATE TABLE IF NOT EXISTS outbox_replay_audit (
    id             bigserial PRIMARY KEY,
    outbox         varchar(20) NOT NULL CHECK (outbox IN ('search', 'chronicle')),
    replayed_by    varchar(120) NOT NULL CHECK (length(btrim(replayed_by)) > 0),
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    replayed_at    timestamptz NOT NULL DEFAULT now(),
    filters        jsonb NOT NULL,
    ids            uuid[] NOT NULL,
    matched_count  int NOT NULL,
    row_count      int NOT NULL CHECK (row_count = cardinality(ids))
);
CREATE INDEX IF NOT EXISTS outbox_replay_audit_at_idx ON outbox_replay_audit (replayed_at DESC);

CREATE OR REPLACE FUNCTION wordloom_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END;
$$;

DROP TRIGGER IF EXISTS outbox_replay_audit_append_only ON outbox_replay_audit;
CREATE TRIGGER outbox_replay_audit_append_only BEFORE UPDATE OR DELETE ON outbox_replay_audit
    FOR EACH ROW EXECUTE FUNCTION wordloom_refuse_audit_change();
DROP TRIGGER IF EXISTS outbox_replay_audit_no_truncate ON outbox_replay_audit;
CREATE TRIGGER outbox_replay_audit_no_truncate BEFORE TRUNCATE ON outbox_replay_audit
    FOR EACH STATEMENT EXECUTE FUNCTION wordloom_refuse_audit_change();

-- Where an interrupted rebuild stopped.  Written in the same transaction as the batch it describes,
-- so after a crash the checkpoint names exactly the last committed batch (no gap, no double work).
-- The row is removed when the rebuild finishes.
CREATE TABLE IF NOT EXISTS rebuild_checkpoints (
    projection   varchar(80) PRIMARY KEY,
    phase        varchar(40) NOT NULL,
    last_key     uuid NULL,
    options      jsonb NOT NULL,
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Each alias move made by rebuild-es.  deactivated_at tells a rollback from which moment the
-- previous index stopped receiving writes, so it can be caught up before the alias moves back.
CREATE TABLE IF NOT EXISTS search_alias_history (
    id              bigserial PRIMARY KEY,
    alias           varchar(255) NOT NULL,
    index_name      varchar(255) NOT NULL,
    activated_at    timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz NULL,
    action          varchar(20) NOT NULL CHECK (action IN ('rebuild', 'convert', 'rollback')),
    doc_count       bigint NULL
);
CREATE INDEX IF NOT EXISTS search_alias_history_alias_idx ON search_alias_history (alias, activated_at DESC);
