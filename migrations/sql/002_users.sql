-- +goose Up
-- The users read model, built from the ledger by the users projection.
-- Application code reads it; only the projection writes it.
CREATE TABLE users (
    clerk_id         TEXT        PRIMARY KEY,
    email            TEXT,
    first_name       TEXT,
    last_name        TEXT,
    name             TEXT,
    image_url        TEXT,
    role             TEXT        NOT NULL DEFAULT 'USER',
    practice_id      TEXT,
    created_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    deleted_at       TIMESTAMPTZ,
    -- Ordering: Clerk's updated_at of the profile data applied (NULL until a
    -- user.created/updated is applied) and the ledger offset of the last
    -- event applied to the row.
    clerk_updated_at TIMESTAMPTZ,
    last_offset      BIGINT      NOT NULL
);
CREATE INDEX users_email_idx ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_practice_idx ON users (practice_id) WHERE deleted_at IS NULL;

COMMENT ON TABLE users IS 'Read model of Clerk users, rebuilt from ledger_events by the users projection. deleted_at set = soft-deleted (row kept); a row with no profile data and deleted_at set is a tombstone.';

-- Events a projection could not apply after several attempts: recorded and
-- skipped so they do not block the projection, never dropped silently.
CREATE TABLE projection_failures (
    projection     TEXT        NOT NULL,
    ledger_offset  BIGINT      NOT NULL,
    svix_id        TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    error          TEXT        NOT NULL,
    attempts       INTEGER     NOT NULL,
    failed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, ledger_offset)
);

-- +goose Down
DROP TABLE projection_failures;
DROP TABLE users;
