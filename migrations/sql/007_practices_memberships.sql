-- +goose Up
-- The practices and memberships read models, built from the ledger's
-- organization.* and organizationMembership.* events (Clerk models a
-- practice as an organization). Application code reads them; only their
-- projections write them. Same rules as users: last writer wins on Clerk's
-- updated_at, deleted_at is sticky, a deletion that arrives first leaves a
-- tombstone.
CREATE TABLE practices (
    clerk_org_id     TEXT        PRIMARY KEY,
    name             TEXT,
    slug             TEXT,
    image_url        TEXT,
    created_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    deleted_at       TIMESTAMPTZ,
    -- Ordering: Clerk's updated_at of the organization applied, and the
    -- ledger offset of the last entry that changed the row.
    clerk_updated_at TIMESTAMPTZ,
    last_offset      BIGINT      NOT NULL
);
-- Hash indexes: a signed event may carry a value of any length, and a
-- btree index row stops at about 2.7 kB (see 004).
CREATE INDEX practices_slug_idx ON practices USING hash (slug) WHERE deleted_at IS NULL;

COMMENT ON TABLE practices IS 'Read model of Clerk organizations (practices), rebuilt from ledger_events by the practices projection. deleted_at set = deleted (row kept); a row with no name and deleted_at set is a tombstone.';

CREATE TABLE memberships (
    clerk_membership_id TEXT        PRIMARY KEY,
    clerk_org_id        TEXT,
    clerk_user_id       TEXT,
    role                TEXT,
    created_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ,
    clerk_updated_at    TIMESTAMPTZ,
    last_offset         BIGINT      NOT NULL
);
CREATE INDEX memberships_org_idx ON memberships USING hash (clerk_org_id) WHERE deleted_at IS NULL;
CREATE INDEX memberships_user_idx ON memberships USING hash (clerk_user_id) WHERE deleted_at IS NULL;

COMMENT ON TABLE memberships IS 'Read model of Clerk organization memberships, rebuilt from ledger_events by the memberships projection. deleted_at set = the membership ended (row kept); a row with no clerk_org_id and deleted_at set is a tombstone.';

-- +goose Down
DROP TABLE memberships;
DROP TABLE practices;
