package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/projections"
)

func TestUsersAssignIsALedgerEvent(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	require.Equal(t, "accepted", h.deliver("msg_assign", fixture(t, "user.created.json")).body["status"])
	const clerkID = "user_29w83sxmDNGwOuEthce5gg56FcC"
	// The practice must be in practices (see practices_test.go).
	require.Equal(t, "accepted", h.deliver("msg_org", clerkfake.MustBuild("organization.created", clerkfake.Options{ID: "org_42"})).body["status"])
	require.Eventually(t, func() bool {
		state, err := projections.LookupPractice(ctx, h.db.Pool, "org_42")
		require.NoError(t, err)
		return state == projections.PracticeActive
	}, 10*time.Second, 10*time.Millisecond)

	role, practice := "ADMIN", "org_42"
	cmd := UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Role: &role, Practice: &practice, Actor: "ops-alice", Reason: "ticket 7"}
	g, out := testGlobals()
	require.NoError(t, cmd.Run(ctx, g))
	require.Regexp(t, `^\{"actor":"ops-alice","clerk_id":"`+clerkID+`","event_type":"webhookd.user.access_changed","status":"recorded","svix_id":"whd_[0-9a-f]{32}"\}\n$`, out.String())

	type row struct {
		Role     string
		Practice *string
		Email    string
	}
	var got row
	require.Eventually(t, func() bool {
		err := h.db.Pool.QueryRow(ctx, `SELECT role, practice_id, email FROM users WHERE clerk_id = $1`, clerkID).Scan(&got.Role, &got.Practice, &got.Email)
		return err == nil && got.Role == "ADMIN"
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, row{"ADMIN", &practice, "example@example.org"}, got)

	// The change is in the ledger with who made it.
	var (
		source, eventType, subject string
		payload                    []byte
	)
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT source, event_type, subject_id, payload FROM ledger_events WHERE source = 'webhookd'`).
		Scan(&source, &eventType, &subject, &payload))
	require.Equal(t, domain.SourceWebhookd, source)
	require.Equal(t, domain.EventUserAccessChanged, eventType)
	require.Equal(t, clerkID, subject)
	var body struct {
		Data domain.AccessChange `json:"data"`
	}
	require.NoError(t, json.Unmarshal(payload, &body))
	require.Equal(t, domain.AccessChange{ClerkID: clerkID, Role: &role, PracticeID: &practice, Actor: "ops-alice", Reason: "ticket 7"}, body.Data)

	// Removing the practice keeps the role.
	empty := ""
	require.NoError(t, (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Practice: &empty, Actor: "ops-alice"}).Run(ctx, g))
	require.Eventually(t, func() bool {
		err := h.db.Pool.QueryRow(ctx, `SELECT role, practice_id, email FROM users WHERE clerk_id = $1`, clerkID).Scan(&got.Role, &got.Practice, &got.Email)
		return err == nil && got.Practice == nil
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "ADMIN", got.Role)
}

func TestUsersAssignRefusesBadInput(t *testing.T) {
	t.Parallel()
	bad := "admin"
	for _, tc := range []struct {
		cmd  UsersAssignCmd
		want string
	}{
		{UsersAssignCmd{ClerkID: "user_1", Actor: "ops"}, "nothing to change: give a role, a practice, or both"},
		{UsersAssignCmd{ClerkID: "user_1", Role: &bad, Actor: "ops"}, "role must be upper-case letters, digits and _ (e.g. USER, ADMIN), at most 32"},
	} {
		g, out := testGlobals()
		err := tc.cmd.Run(context.Background(), g)
		require.EqualError(t, err, tc.want)
		require.Empty(t, out.String())
	}
}
