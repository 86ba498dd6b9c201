-- +goose Up
-- A delivery whose svix-id is already in the ledger but whose signed body
-- differs from the stored one. The ledger keeps the first body (one row
-- per svix-id) and the answer is still 200 duplicate, so that Svix stops
-- retrying; the other body is kept here, with the facts to judge it, for
-- an auditor. Append-only, like ledger_events.
CREATE TABLE ledger_conflicts (
    id              BIGSERIAL   NOT NULL PRIMARY KEY,
    svix_id         TEXT        NOT NULL,
    stored_sha256   BYTEA       NOT NULL CHECK (length(stored_sha256) = 32),
    received_sha256 BYTEA       NOT NULL CHECK (length(received_sha256) = 32),
    payload         BYTEA       NOT NULL,
    svix_timestamp  TIMESTAMPTZ,
    signature       TEXT,
    received_at     TIMESTAMPTZ NOT NULL,
    source_ip       INET,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ledger_conflicts_differ CHECK (stored_sha256 <> received_sha256)
);

-- The same conflicting body re-delivered (Svix retries) is kept once.
CREATE UNIQUE INDEX ledger_conflicts_body_key ON ledger_conflicts (svix_id, received_sha256);

COMMENT ON TABLE ledger_conflicts IS 'Signed deliveries whose svix-id was already in ledger_events with a different body (SHA-256 of each); the body received is kept in payload. Append-only.';

-- +goose StatementBegin
CREATE FUNCTION ledger_conflicts_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_conflicts is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Conflicts are evidence; they are never changed.';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_conflicts_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_conflicts
    FOR EACH ROW EXECUTE FUNCTION ledger_conflicts_refuse_change();

CREATE TRIGGER ledger_conflicts_no_truncate
    BEFORE TRUNCATE ON ledger_conflicts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_conflicts_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON ledger_conflicts FROM PUBLIC;

-- +goose Down
DROP TABLE ledger_conflicts;
DROP FUNCTION ledger_conflicts_refuse_change();
