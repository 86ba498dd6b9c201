package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/projections"
)

// sendFile sends body with `webhookd send --data FILE`, signed as Svix
// signs, to h.
func sendFile(t *testing.T, h *harness, body []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(path, body, 0o600))
	var out bytes.Buffer
	require.NoError(t, (&SendCmd{Data: path, To: h.url, Secret: testSecret, Count: 1}).run(context.Background(), &out, t.TempDir()), out.String())
}

type practiceRow struct {
	Name      *string
	DeletedAt *time.Time
}

type membershipRow struct {
	OrgID, UserID, Role *string
	DeletedAt           *time.Time
}

// Organizations and memberships sent by `webhookd send` in any order (a
// membership before its organization, deletions before creations) appear
// in practices and memberships as in-order delivery leaves them; `replay
// all --check` agrees; `users assign --practice` is checked against
// practices.
func TestOrganizationsAndMembershipsSentInAnyOrderAppear(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	build := func(typ string, o clerkfake.Options) []byte {
		body, err := clerkfake.Build(typ, o)
		require.NoError(t, err)
		return body
	}
	live := clerkfake.Options{ID: "org_e2e", Seed: 5}
	gone := clerkfake.Options{ID: "org_gone", Seed: 6}
	mem := clerkfake.Options{ID: "orgmem_e2e", OrgID: "org_e2e", UserID: "user_e2e", Seed: 5}
	memGone := clerkfake.Options{ID: "orgmem_gone", OrgID: "org_gone", UserID: "user_e2e", Seed: 5}
	at := func(o clerkfake.Options, d time.Duration) clerkfake.Options { o.Time = t0.Add(d); return o }
	orgUpdated := build("organization.updated", at(live, 2*time.Minute))
	for _, body := range [][]byte{
		build("organizationMembership.updated", at(mem, 3*time.Minute)), // role org:admin
		orgUpdated,
		build("organizationMembership.deleted", at(memGone, 5*time.Minute)),
		build("organization.deleted", at(gone, 4*time.Minute)),
		build("organizationMembership.created", at(mem, time.Minute)), // role org:member, older
		build("organization.created", at(live, 0)),
		build("organization.created", at(gone, 0)),
		build("organizationMembership.created", at(memGone, time.Minute)),
		orgUpdated, // a repeat under a new svix-id
	} {
		sendFile(t, h, body)
	}
	// Generated ones too: each a new organization.
	var out bytes.Buffer
	require.NoError(t, (&SendCmd{Type: "organization.created", To: h.url, Secret: testSecret, Count: 3}).run(ctx, &out, t.TempDir()))

	var orgData struct {
		Data struct{ Name string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(orgUpdated, &orgData))
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM practices`).Scan(&n))
		return n == 5
	}, 20*time.Second, 10*time.Millisecond)
	practice := func(id string) practiceRow {
		var p practiceRow
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT name, deleted_at FROM practices WHERE clerk_org_id = $1`, id).Scan(&p.Name, &p.DeletedAt))
		return p
	}
	membership := func(id string) membershipRow {
		var m membershipRow
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT clerk_org_id, clerk_user_id, role, deleted_at FROM memberships WHERE clerk_membership_id = $1`, id).
			Scan(&m.OrgID, &m.UserID, &m.Role, &m.DeletedAt))
		return m
	}
	// The memberships projection runs apart from the practices one: wait
	// for its own row (a missing row is not yet, not a failure).
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE clerk_membership_id = 'orgmem_gone' AND clerk_org_id IS NOT NULL`).Scan(&n))
		return n == 1
	}, 20*time.Second, 10*time.Millisecond)
	p := practice("org_e2e")
	require.Nil(t, p.DeletedAt)
	require.Equal(t, orgData.Data.Name, *p.Name)
	p = practice("org_gone")
	require.Equal(t, t0.Add(4*time.Minute), p.DeletedAt.UTC(), "a late create does not bring a deleted practice back")
	require.NotNil(t, p.Name, "the late create fills in the tombstone")
	require.Equal(t, membershipRow{ptr("org_e2e"), ptr("user_e2e"), ptr("org:admin"), nil}, membership("orgmem_e2e"))
	m := membership("orgmem_gone")
	require.Equal(t, t0.Add(5*time.Minute), m.DeletedAt.UTC())
	rows, err := h.db.Pool.Query(ctx, `SELECT subject_id FROM ledger_events e WHERE event_type = 'organization.created'
		AND NOT EXISTS (SELECT 1 FROM practices p WHERE p.clerk_org_id = e.subject_id)`)
	require.NoError(t, err)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, missing, "every organization sent is a practice")

	// The rebuilt tables equal the live ones (an inequality exits 1).
	require.NoError(t, (&ReplayCmd{Database: Database{URL: h.db.URL}, SigningSecret: testSecret, Projection: "all", Check: true, BatchSize: 3}).Run(ctx, quietGlobals()))

	// users assign --practice refuses unknown and deleted practices.
	assign := func(practice string, force bool) error {
		return (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: "user_e2e", Practice: &practice, Force: force, Actor: "ops"}).Run(ctx, quietGlobals())
	}
	require.EqualError(t, assign("org_nope", false), `practice "org_nope" is not in the practices table (no organization.created for it has been applied); check the id, or give --force to assign it anyway`)
	require.EqualError(t, assign("org_gone", false), `practice "org_gone" is deleted (organization.deleted); give --force to assign it anyway`)
	var assigned int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_events WHERE event_type = $1`, domain.EventUserAccessChanged).Scan(&assigned))
	require.Zero(t, assigned, "a refused assignment records nothing")
	require.NoError(t, assign("org_e2e", false))
	require.NoError(t, assign("org_nope", true))
	require.Eventually(t, func() bool {
		var practice *string
		err := h.db.Pool.QueryRow(ctx, `SELECT practice_id FROM users WHERE clerk_id = 'user_e2e'`).Scan(&practice)
		return err == nil && practice != nil && *practice == "org_nope"
	}, 20*time.Second, 10*time.Millisecond)
}

func ptr(s string) *string { return &s }

// `webhookd projections retry` re-drives a recorded failure once the
// cause is fixed, records who retried what and how it went as a ledger
// event, and leaves an entry that fails again recorded.
func TestProjectionsRetryAfterAFix(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	// The database refuses one membership's rows: the live projection
	// records the entry after its attempts and skips it.
	_, err := h.db.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_membership() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'membership refused by the test'; END $$;
		CREATE TRIGGER refuse_membership BEFORE INSERT OR UPDATE ON memberships
			FOR EACH ROW WHEN (NEW.clerk_membership_id = 'orgmem_refused') EXECUTE FUNCTION refuse_membership();`)
	require.NoError(t, err)
	sendFile(t, h, clerkfake.MustBuild("organizationMembership.created", clerkfake.Options{ID: "orgmem_refused", Seed: 9}))
	// And one entry no fix of the database helps: role is not a string.
	var bad map[string]any
	require.NoError(t, json.Unmarshal(clerkfake.MustBuild("organizationMembership.created", clerkfake.Options{ID: "orgmem_bad", Seed: 9}), &bad))
	bad["data"].(map[string]any)["role"] = 7
	badBody, err := json.Marshal(bad)
	require.NoError(t, err)
	sendFile(t, h, badBody)

	var failures []projections.Failure
	require.Eventually(t, func() bool {
		failures, err = projections.Failures(ctx, h.db.Pool, projections.FailureFilter{Projection: "memberships"})
		require.NoError(t, err)
		return len(failures) == 2
	}, 30*time.Second, 20*time.Millisecond)
	require.Contains(t, failures[0].Error, "membership refused by the test")
	require.Contains(t, failures[1].Error, `field "role" must be a string`)
	require.NoError(t, (&ProjectionsFailuresCmd{Database: Database{URL: h.db.URL}, Projection: "memberships"}).Run(ctx, quietGlobals()))

	// The fix.
	_, err = h.db.Pool.Exec(ctx, `DROP TRIGGER refuse_membership ON memberships`)
	require.NoError(t, err)
	retry := ProjectionsRetryCmd{Database: Database{URL: h.db.URL}, SigningSecret: testSecret, Projection: "memberships", Offset: failures[0].Offset, Actor: "ops-alice", Reason: "trigger removed"}
	require.NoError(t, retry.Run(ctx, quietGlobals()))
	var role string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT role FROM memberships WHERE clerk_membership_id = 'orgmem_refused'`).Scan(&role))
	require.Equal(t, "org:member", role)

	// The bad entry fails again and stays recorded, one attempt more.
	retry = ProjectionsRetryCmd{Database: Database{URL: h.db.URL}, SigningSecret: testSecret, Actor: "ops-bob"}
	require.EqualError(t, retry.Run(ctx, quietGlobals()), "1 of 1 entries failed again and stay in projection_failures")
	left, err := projections.Failures(ctx, h.db.Pool, projections.FailureFilter{})
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, failures[1].Offset, left[0].Offset)
	require.Equal(t, failures[1].Attempts+1, left[0].Attempts)

	// Nothing left to retry for that projection and offset.
	require.ErrorIs(t, (&ProjectionsRetryCmd{Database: Database{URL: h.db.URL}, SigningSecret: testSecret, Offset: failures[0].Offset, Actor: "ops"}).Run(ctx, quietGlobals()), projections.ErrNoFailures)

	// Both retries are in the ledger: who, when, what came of each.
	rows, err := h.db.Pool.Query(ctx, `SELECT payload FROM ledger_events WHERE event_type = $1 ORDER BY "offset"`, domain.EventProjectionRetried)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	require.Len(t, payloads, 2)
	var first, second struct {
		Data      ProjectionRetried `json:"data"`
		Timestamp int64             `json:"timestamp"`
	}
	require.NoError(t, json.Unmarshal(payloads[0], &first))
	require.NoError(t, json.Unmarshal(payloads[1], &second))
	require.Equal(t, "ops-alice", first.Data.Actor)
	require.Equal(t, "trigger removed", first.Data.Reason)
	require.Equal(t, "memberships", first.Data.ID)
	require.Len(t, first.Data.Results, 1)
	require.Equal(t, projections.RetryApplied, first.Data.Results[0].Outcome)
	require.Equal(t, failures[0].SvixID, first.Data.Results[0].SvixID)
	require.Positive(t, first.Timestamp)
	require.Equal(t, "ops-bob", second.Data.Actor)
	require.Equal(t, "all", second.Data.ID)
	require.Equal(t, projections.RetryFailed, second.Data.Results[0].Outcome)
	require.Contains(t, second.Data.Results[0].Cause, `field "role" must be a string`)
}
