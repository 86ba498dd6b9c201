package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/projections"
)

func TestCompareUsers(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]UserModel{
		"user_ok":      {ClerkID: "user_ok", Email: "a@example.com", UpdatedAt: t0},
		"user_deleted": {ClerkID: "user_deleted", Email: "b@example.com", UpdatedAt: t0, Deleted: true, DeletedAt: t0.Add(time.Second)},
		"user_stale":   {ClerkID: "user_stale", Email: "c.v2@example.com", UpdatedAt: t0.Add(time.Second)},
		"user_revived": {ClerkID: "user_revived", Email: "d@example.com", UpdatedAt: t0, Deleted: true, DeletedAt: t0},
		"user_missing": {ClerkID: "user_missing", Email: "e@example.com", UpdatedAt: t0},
	}
	// The table's times come back in the server's zone: equal instants
	// match whatever the zone.
	paris := time.FixedZone("CET", 3600)
	got := map[string]UserModel{
		"user_ok":      {ClerkID: "user_ok", Email: "a@example.com", UpdatedAt: t0.In(paris)},
		"user_deleted": {ClerkID: "user_deleted", Email: "b@example.com", UpdatedAt: t0, Deleted: true, DeletedAt: t0.Add(time.Second).In(paris)},
		"user_stale":   {ClerkID: "user_stale", Email: "c.v1@example.com", UpdatedAt: t0},
		"user_revived": {ClerkID: "user_revived", Email: "d@example.com", UpdatedAt: t0},
		"user_extra":   {ClerkID: "user_extra", Email: "x@example.com", UpdatedAt: t0},
	}
	c := compareUsers(want, got)
	require.Equal(t, 6, c.Checked)
	require.Equal(t, 4, c.Mismatched)
	require.Equal(t, []string{
		`user_extra: got email "x@example.com", clerk_updated_at 2026-01-01T00:00:00Z, want no row`,
		`user_missing: no row, want email "e@example.com", clerk_updated_at 2026-01-01T00:00:00Z`,
		`user_revived: got email "d@example.com", clerk_updated_at 2026-01-01T00:00:00Z, want email "d@example.com", clerk_updated_at 2026-01-01T00:00:00Z, deleted_at 2026-01-01T00:00:00Z`,
		`user_stale: got email "c.v1@example.com", clerk_updated_at 2026-01-01T00:00:00Z, want email "c.v2@example.com", clerk_updated_at 2026-01-01T00:00:01Z`,
	}, c.Examples)

	require.Equal(t, usersCheck{Checked: 5}, compareUsers(want, want))
}

// TestExpectAgreesWithTheProjectionRules folds a workload, delivered in a
// random order as the concurrent load does, with the users projection's own
// rules (projections.UserState.Apply) and checks the result is the model
// the bench compares the users table with.
func TestExpectAgreesWithTheProjectionRules(t *testing.T) {
	t.Parallel()
	events, err := Generate(WorkloadConfig{Events: 3000, Users: 200})
	require.NoError(t, err)
	deletes := 0
	for _, e := range events {
		if e.Deleted() {
			deletes++
		}
	}
	require.Positive(t, deletes, "the workload deletes no user: the test proves nothing")

	shuffled := append([]Event(nil), events...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	states := map[string]*projections.UserState{}
	for k, e := range shuffled {
		env, err := domain.ParseEnvelope(e.Body)
		require.NoError(t, err)
		ev, err := projections.DecodeUserEvent(domain.LedgerEntry{
			Offset: int64(k + 1), SvixID: e.MsgID, Source: domain.SourceClerk, EventType: env.Type,
			SubjectID: env.SubjectID, InstanceID: env.InstanceID, EventTime: env.Time, Payload: e.Body,
		})
		require.NoError(t, err)
		s, ok := states[ev.ClerkID]
		if !ok {
			s = new(projections.UserState)
			*s = projections.NewUserState(ev.ClerkID)
			states[ev.ClerkID] = s
		}
		s.Apply(ev)
	}
	got := map[string]UserModel{}
	for id, s := range states {
		m := UserModel{ClerkID: id}
		if s.Email != nil {
			m.Email = *s.Email
		}
		if s.ClerkUpdatedAt != nil {
			m.UpdatedAt = *s.ClerkUpdatedAt
		}
		if s.DeletedAt != nil {
			m.Deleted, m.DeletedAt = true, *s.DeletedAt
		}
		got[id] = m
	}
	c := compareUsers(Expect(events), got)
	require.Empty(t, c.Examples)
	require.Equal(t, 200, c.Checked)
}
