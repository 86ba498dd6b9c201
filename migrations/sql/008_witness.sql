-- +goose Up
-- Checkpoints leave the database: each checkpoint is also kept as a C2SP
-- tlog-checkpoint signed note (origin, size, root; Ed25519 by the same
-- key), which witnesses outside the operator's control cosign
-- (tlog-cosignature/v1). Checkpoints signed before this migration have no
-- note. Cosignatures are evidence and append-only like the seal tables.
ALTER TABLE ledger_checkpoints ADD COLUMN origin TEXT, ADD COLUMN note TEXT;

COMMENT ON COLUMN ledger_checkpoints.note IS 'The checkpoint as a C2SP tlog-checkpoint signed note (text, the log''s signature line); NULL for checkpoints signed before migration 6.';

CREATE TABLE ledger_cosignatures (
    tree_size   BIGINT      NOT NULL REFERENCES ledger_checkpoints (tree_size),
    witness     TEXT        NOT NULL,
    key_hash    BIGINT      NOT NULL CHECK (key_hash BETWEEN 0 AND 4294967295),
    signature   TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, witness, key_hash)
);

COMMENT ON TABLE ledger_cosignatures IS 'Witness cosignatures (C2SP tlog-cosignature/v1) on checkpoint notes, accepted only when they verify against a configured witness key. Append-only.';

CREATE TRIGGER ledger_cosignatures_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_cosignatures
    FOR EACH ROW EXECUTE FUNCTION ledger_seal_refuse_change();

CREATE TRIGGER ledger_cosignatures_no_truncate
    BEFORE TRUNCATE ON ledger_cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_seal_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON ledger_cosignatures FROM PUBLIC;

-- +goose Down
DROP TABLE ledger_cosignatures;
ALTER TABLE ledger_checkpoints DROP COLUMN note, DROP COLUMN origin;
