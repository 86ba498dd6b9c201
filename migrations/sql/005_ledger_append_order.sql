-- +goose Up
-- Appends commit in (transaction_id, offset) order, so that readers need no
-- transaction-id horizon.
--
-- Until now every ordered reader waited on pg_snapshot_xmin(), the oldest
-- transaction of the whole PostgreSQL server: one idle transaction in any
-- database stopped every projection and the sealer. Instead, every INSERT
-- into ledger_events now
--   1. takes a transaction-level advisory lock of the table (the statement
--      trigger), held to commit, so appending transactions commit one after
--      the other;
--   2. refuses, under that lock, a transaction whose id is lower than one
--      that appended before it (it took its id before the lock, and its
--      rows would sort behind rows readers may already have passed);
--   3. gets its transaction_id and offset from the row trigger, under the
--      lock: no client, webhookd's own role included, can choose them.
-- A transaction that commits later therefore has a higher transaction_id
-- than every committed row, and a reader can read all committed rows after
-- its position, (transaction_id, offset) > (tx, off), and never miss one.
-- Rows written before this migration are all committed once it holds its
-- lock on the table, and every later row sorts after them.

-- The trigger assigns both; a default would be evaluated before it. ALTER
-- TABLE also waits for every transaction that inserted without the
-- triggers, so the maximum read below covers every row they wrote.
ALTER TABLE ledger_events ALTER COLUMN "offset" DROP DEFAULT;
ALTER TABLE ledger_events ALTER COLUMN transaction_id DROP DEFAULT;

-- The highest transaction id that took the append lock (not rolled back
-- with its transaction: a sequence is not transactional, so every
-- isolation level sees the latest value).
CREATE SEQUENCE ledger_events_append_xid MINVALUE 0 START WITH 0;
COMMENT ON SEQUENCE ledger_events_append_xid IS 'Highest transaction id that appended to ledger_events (set under the append lock). An append from a lower transaction id is refused.';
SELECT setval('ledger_events_append_xid', coalesce((SELECT max(transaction_id)::text::bigint FROM ledger_events), 0), true);

-- +goose StatementBegin
-- Statement trigger: runs before any row of the INSERT is computed (so
-- before a VALUES expression can give the transaction its id). Security
-- definer so that a role allowed to INSERT needs no right on the sequence.
-- The lock key is (2003331429, the table's oid): per table, so
-- deployments in different schemas do not wait for each other.
-- eventstore.appendLockKey names the same key.
CREATE FUNCTION ledger_events_append_lock() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    hwm regclass := format('%I.ledger_events_append_xid', TG_TABLE_SCHEMA)::regclass;
    mine bigint;
    last bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(2003331429, TG_RELID::integer);
    mine := pg_current_xact_id()::text::bigint;
    last := pg_sequence_last_value(hwm);
    IF mine < last THEN
        RAISE EXCEPTION 'ledger_events: transaction % took its transaction id before transaction % appended; its entries would be ordered before entries readers may already have read', mine, last
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry in a new transaction whose first write is the INSERT into ledger_events (do not call pg_current_xact_id() or write elsewhere first).';
    END IF;
    IF mine > last THEN
        PERFORM setval(hwm, mine, true);
    END IF;
    RETURN NULL;
END;
$$;

-- Row trigger: the transaction id (taken under the lock by the statement
-- trigger) and the next offset, whatever the INSERT said. The sequence is
-- named with the table's schema, whatever the client's search_path.
CREATE FUNCTION ledger_events_append_position() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.transaction_id := pg_current_xact_id();
    NEW."offset" := nextval(format('%I.ledger_events_offset_seq', TG_TABLE_SCHEMA)::regclass);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER ledger_events_append_lock
    BEFORE INSERT ON ledger_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_append_lock();

CREATE TRIGGER ledger_events_append_position
    BEFORE INSERT ON ledger_events
    FOR EACH ROW EXECUTE FUNCTION ledger_events_append_position();

-- +goose Down
DROP TRIGGER ledger_events_append_position ON ledger_events;
DROP TRIGGER ledger_events_append_lock ON ledger_events;
DROP FUNCTION ledger_events_append_position();
DROP FUNCTION ledger_events_append_lock();
ALTER TABLE ledger_events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id();
ALTER TABLE ledger_events ALTER COLUMN "offset" SET DEFAULT nextval('ledger_events_offset_seq');
DROP SEQUENCE ledger_events_append_xid;
