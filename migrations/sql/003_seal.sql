-- +goose Up
-- Tamper evidence (RFC 6962 model): the sealer gives every committed ledger
-- row, in safe (transaction_id, offset) order, a gapless ledger index and its
-- Merkle leaf hash, and periodically signs the tree's root. Both tables are
-- append-only, like ledger_events.
CREATE TABLE ledger_index (
    ledger_index  BIGINT NOT NULL PRIMARY KEY CHECK (ledger_index >= 0),
    ledger_offset BIGINT NOT NULL UNIQUE REFERENCES ledger_events ("offset"),
    leaf_hash     BYTEA  NOT NULL CHECK (length(leaf_hash) = 32)
);

COMMENT ON TABLE ledger_index IS 'Position of each ledger entry in the Merkle tree (gapless from 0) and its leaf hash SHA-256(0x00 || canonical entry). Written only by the sealer leader. Append-only.';

CREATE TABLE ledger_checkpoints (
    tree_size  BIGINT      NOT NULL PRIMARY KEY CHECK (tree_size > 0),
    root_hash  BYTEA       NOT NULL CHECK (length(root_hash) = 32),
    signed_at  TIMESTAMPTZ NOT NULL,
    key_id     TEXT        NOT NULL,
    public_key BYTEA       NOT NULL CHECK (length(public_key) = 32),
    signature  BYTEA       NOT NULL CHECK (length(signature) = 64)
);

COMMENT ON TABLE ledger_checkpoints IS 'Signed tree heads {tree size, root hash, time} (Ed25519, see audit.Checkpoint). Append-only.';

-- +goose StatementBegin
-- A ledger index must be the next one: no gap, no reuse. With several rows
-- in one INSERT each row sees the ones before it.
CREATE FUNCTION ledger_index_check_next() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    want BIGINT;
BEGIN
    SELECT coalesce(max(ledger_index) + 1, 0) INTO want FROM ledger_index;
    IF NEW.ledger_index <> want THEN
        RAISE EXCEPTION 'ledger_index must be gapless: got %, next is %', NEW.ledger_index, want
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE FUNCTION ledger_seal_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Seals are evidence; they are never changed.';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_index_gapless
    BEFORE INSERT ON ledger_index
    FOR EACH ROW EXECUTE FUNCTION ledger_index_check_next();

CREATE TRIGGER ledger_index_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_index
    FOR EACH ROW EXECUTE FUNCTION ledger_seal_refuse_change();

CREATE TRIGGER ledger_index_no_truncate
    BEFORE TRUNCATE ON ledger_index
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_seal_refuse_change();

CREATE TRIGGER ledger_checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_seal_refuse_change();

CREATE TRIGGER ledger_checkpoints_no_truncate
    BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_seal_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON ledger_index, ledger_checkpoints FROM PUBLIC;

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_index;
DROP FUNCTION ledger_seal_refuse_change();
DROP FUNCTION ledger_index_check_next();
