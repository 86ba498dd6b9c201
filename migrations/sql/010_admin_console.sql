-- +goose Up
-- The admin API and console (package admin): their credentials, their
-- sessions, the results of integrity checks run from the console, and the
-- indexes that keep user search and timelines fast on a large ledger.

-- Admin API tokens. Only a SHA-256 of each token is kept: tokens are 32
-- random bytes, so a plain hash cannot be reversed by guessing. Creating
-- and revoking a token is also a ledger entry (webhookd.token.*): this
-- table is the credential store, the ledger the record of who changed it.
CREATE TABLE admin_tokens (
    name        TEXT        PRIMARY KEY,
    role        TEXT        NOT NULL CHECK (role IN ('viewer', 'admin')),
    token_hash  BYTEA       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT        NOT NULL,
    revoked_at  TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

COMMENT ON TABLE admin_tokens IS 'Admin API and console tokens (SHA-256 of the token only). Creations and revocations are ledger entries too.';

-- Console sessions: the cookie holds a random id, this table its SHA-256,
-- the token it signed in with and the anti-forgery token of its forms.
CREATE TABLE admin_sessions (
    session_hash BYTEA       PRIMARY KEY CHECK (length(session_hash) = 32),
    token_name   TEXT        NOT NULL REFERENCES admin_tokens (name) ON DELETE CASCADE,
    csrf_token   TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_last_seen_idx ON admin_sessions (last_seen_at);

-- Results of `verify --db` runs started from the console.
CREATE TABLE ledger_verifications (
    id         BIGSERIAL   PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    ok         BOOLEAN     NOT NULL,
    entries    BIGINT      NOT NULL,
    tree_size  BIGINT      NOT NULL,
    problems   JSONB       NOT NULL,
    actor      TEXT        NOT NULL
);

-- A user's timeline: entries about one subject in ledger order, read a
-- page at a time (ledger_events_subject_idx has no order).
CREATE INDEX ledger_events_subject_offset_idx ON ledger_events (subject_id, "offset");
-- Membership history of a user, deleted memberships included. Hash, as
-- memberships_user_idx: a btree row holds at most about 2.7 kB, and a
-- signed event may carry a longer id (004_hostile_values.sql).
CREATE INDEX memberships_clerk_user_idx ON memberships USING hash (clerk_user_id);
-- User search: the start of a Clerk id, or of an email, name, first or
-- last name, case-insensitive (LIKE 'prefix%' needs text_pattern_ops).
-- The text columns are indexed by their first 200 characters (at most
-- 800 bytes), so a longer value cannot exceed a btree row; a search query
-- is at most 200 characters, so a prefix matches the whole value iff it
-- matches its first 200 characters. clerk_id is bounded by its primary key.
CREATE INDEX users_clerk_id_prefix_idx ON users (clerk_id text_pattern_ops);
CREATE INDEX users_email_prefix_idx ON users (left(lower(email), 200) text_pattern_ops);
CREATE INDEX users_name_prefix_idx ON users (left(lower(name), 200) text_pattern_ops);
CREATE INDEX users_first_name_prefix_idx ON users (left(lower(first_name), 200) text_pattern_ops);
CREATE INDEX users_last_name_prefix_idx ON users (left(lower(last_name), 200) text_pattern_ops);

-- +goose Down
DROP INDEX users_last_name_prefix_idx;
DROP INDEX users_first_name_prefix_idx;
DROP INDEX users_name_prefix_idx;
DROP INDEX users_email_prefix_idx;
DROP INDEX users_clerk_id_prefix_idx;
DROP INDEX memberships_clerk_user_idx;
DROP INDEX ledger_events_subject_offset_idx;
DROP TABLE ledger_verifications;
DROP TABLE admin_sessions;
DROP TABLE admin_tokens;
