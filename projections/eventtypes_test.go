package projections_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/fixtures"
	"github.com/webhookd/webhookd/projections"
)

// TestReadModelsDecodeOnlyTheirEventTypes holds each read model's
// EventTypes to what its Decode takes, for every Clerk example event: the
// runner reads entries of other types without their payload and passes
// over them, so a type Decode takes but EventTypes leaves out would never
// be applied.
func TestReadModelsDecodeOnlyTheirEventTypes(t *testing.T) {
	t.Parallel()
	for _, m := range projections.All() {
		t.Run(m.Name(), func(t *testing.T) {
			t.Parallel()
			types := m.EventTypes()
			require.NotEmpty(t, types)
			for _, typ := range fixtures.ClerkEventTypes() {
				e := domain.LedgerEntry{Offset: 1, SvixID: "msg_1", Source: domain.SourceClerk, EventType: typ, Payload: fixtures.ClerkEvent(typ)}
				_, ok, err := m.Prepare(e)
				if slices.Contains(types, typ) {
					require.NoError(t, err, typ)
					require.True(t, ok, "%s lists %s but does not take its example", m.Name(), typ)
					continue
				}
				require.False(t, ok, "%s takes %s, which it does not list", m.Name(), typ)
			}
			// Reconciliation's entries (source clerk-api) too.
			for _, e := range reconciliationEntries(t) {
				_, ok, err := m.Prepare(e)
				if slices.Contains(types, e.EventType) {
					require.NoError(t, err, e.EventType)
					require.True(t, ok, "%s lists %s but does not take it", m.Name(), e.EventType)
					continue
				}
				require.False(t, ok, "%s takes %s, which it does not list", m.Name(), e.EventType)
			}
		})
	}
}

// reconciliationEntries are one entry of each type reconciliation
// appends, built as it builds them from Clerk's example objects.
func reconciliationEntries(t *testing.T) []domain.LedgerEntry {
	t.Helper()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	data := func(typ string) json.RawMessage {
		env, err := domain.ParseEnvelope(clerkfake.MustBuild(typ, clerkfake.Options{Seed: 1}))
		require.NoError(t, err)
		return env.Data
	}
	userEntry, _, err := domain.NewUserSnapshotEntry(data(domain.EventUserUpdated), now)
	require.NoError(t, err)
	org, err := domain.ParseSnapshotOrganization(data(domain.EventOrganizationUpdated))
	require.NoError(t, err)
	membership, err := domain.ParseSnapshotMembership(data(domain.EventMembershipUpdated))
	require.NoError(t, err)
	entries := []domain.LedgerEntry{userEntry,
		domain.OrganizationSnapshotEntry(data(domain.EventOrganizationUpdated), org, now),
		domain.MembershipSnapshotEntry(data(domain.EventMembershipUpdated), membership, now)}
	for _, build := range []func(string, time.Time) (domain.LedgerEntry, error){
		domain.NewUserNotFoundEntry, domain.NewOrganizationNotFoundEntry, domain.NewMembershipNotFoundEntry,
	} {
		e, err := build("id_1", now)
		require.NoError(t, err)
		entries = append(entries, e)
	}
	types := []string{}
	for i := range entries {
		entries[i].Offset = int64(i + 1)
		types = append(types, entries[i].EventType)
	}
	require.ElementsMatch(t, []string{domain.EventUserSnapshot, domain.EventUserNotFound, domain.EventOrganizationSnapshot,
		domain.EventOrganizationNotFound, domain.EventMembershipSnapshot, domain.EventMembershipNotFound}, types)
	return entries
}
