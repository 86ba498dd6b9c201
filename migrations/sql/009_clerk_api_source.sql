-- +goose Up
-- Reconciliation with Clerk's Backend API (`webhookd reconcile`) appends
-- snapshots of Clerk users as Clerk's API returned them, and soft-deletes
-- of users the API no longer knows, under their own source 'clerk-api', so
-- an auditor sees where each fact came from. They carry no Svix signature
-- (Clerk's API does not sign its answers): webhookd signs them with its own
-- Ed25519 key when it appends them, as it signs its own entries, and the
-- origin check (sealer, projections) verifies that signature.
ALTER TABLE ledger_events DROP CONSTRAINT ledger_events_source_check;
ALTER TABLE ledger_events ADD CONSTRAINT ledger_events_source_check CHECK (source IN ('clerk', 'clerk-api', 'webhookd'));

COMMENT ON COLUMN ledger_events.source IS 'Where the entry came from: clerk (a webhook, Svix-signed), clerk-api (a snapshot or absence found by reconciliation, signed by webhookd) or webhookd (webhookd''s own event, signed by webhookd).';

-- +goose Down
ALTER TABLE ledger_events DROP CONSTRAINT ledger_events_source_check;
ALTER TABLE ledger_events ADD CONSTRAINT ledger_events_source_check CHECK (source IN ('clerk', 'webhookd'));
