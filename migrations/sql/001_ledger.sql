-- +goose Up
-- The ledger: every event webhookd was told about, append-only. Column
-- layout follows watermill-sql's PostgreSQL schema ("offset",
-- transaction_id, uuid, payload, metadata) so Watermill's publisher and
-- subscriber work on it; the other columns are the facts an auditor needs.
CREATE TABLE ledger_events (
    "offset"        BIGSERIAL   NOT NULL,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    uuid            VARCHAR(36) NOT NULL,
    svix_id         TEXT        NOT NULL,
    source          TEXT        NOT NULL DEFAULT 'clerk',
    svix_timestamp  TIMESTAMPTZ,
    signature       TEXT,
    event_type      TEXT        NOT NULL,
    subject_id      TEXT        NOT NULL,
    instance_id     TEXT        NOT NULL,
    event_time      TIMESTAMPTZ NOT NULL,
    timestamp_unit  TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    source_ip       INET,
    payload         BYTEA       NOT NULL,
    metadata        JSONB,
    PRIMARY KEY (transaction_id, "offset"),
    CONSTRAINT ledger_events_source_check CHECK (source IN ('clerk', 'webhookd')),
    CONSTRAINT ledger_events_clerk_signed CHECK (source <> 'clerk' OR (svix_timestamp IS NOT NULL AND signature IS NOT NULL)),
    CONSTRAINT ledger_events_unit_check CHECK (timestamp_unit IN ('ms', 's'))
);

COMMENT ON TABLE ledger_events IS 'Append-only audit ledger of Clerk webhook deliveries and webhookd''s own events. UPDATE, DELETE and TRUNCATE are refused.';
COMMENT ON COLUMN ledger_events.payload IS 'The request body exactly as received (bytes). Query it with convert_from(payload, ''UTF8'')::jsonb.';
COMMENT ON COLUMN ledger_events.svix_id IS 'Idempotency key: the svix-id header (webhookd''s own events: whd_…). Unique.';

-- One row per svix-id, whatever races: a second insert fails with 23505,
-- which the event store reports as a duplicate.
CREATE UNIQUE INDEX ledger_events_svix_id_key ON ledger_events (svix_id);
CREATE UNIQUE INDEX ledger_events_offset_key ON ledger_events ("offset");
CREATE INDEX ledger_events_subject_idx ON ledger_events (subject_id);
CREATE INDEX ledger_events_received_at_idx ON ledger_events (received_at);

-- Consumer positions of the projections, in watermill-sql's PostgreSQL
-- offsets layout. One row per consumer group.
CREATE TABLE ledger_offsets (
    consumer_group                VARCHAR(255) NOT NULL PRIMARY KEY,
    offset_acked                  BIGINT,
    last_processed_transaction_id xid8         NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION ledger_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'The ledger is the audit trail; record a correction as a new event instead.';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_events_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_events_refuse_change();

CREATE TRIGGER ledger_events_no_truncate
    BEFORE TRUNCATE ON ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_refuse_change();

-- Privileges too, for roles other than the owner.
REVOKE UPDATE, DELETE, TRUNCATE ON ledger_events FROM PUBLIC;

-- +goose Down
DROP TABLE ledger_offsets;
DROP TABLE ledger_events;
DROP FUNCTION ledger_events_refuse_change();
