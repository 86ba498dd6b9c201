package domain

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/fixtures"
)

// TestClerkEventsTakeTheSinglePass checks that Clerk's own example bodies
// (users, organizations and memberships) are read by the single pass, not
// by the reference fallback. The
// fallback gives the same results, so without this test (and the
// benchmarks) nothing would notice the single pass giving up on real
// events.
func TestClerkEventsTakeTheSinglePass(t *testing.T) {
	t.Parallel()
	types := fixtures.ClerkEventTypes()
	require.Len(t, types, 5)
	for _, f := range types {
		body := fixtures.ClerkEvent(f)
		_, ok := readPlainEnvelope(body, nil, nil)
		require.True(t, ok, f)
		switch f {
		case EventOrganizationCreated:
			var tok orgTokens
			env, ok := readPlainEnvelope(body, orgMembers[:], tok[:])
			require.True(t, ok, f)
			_, ok = tok.organization(env.Time)
			require.True(t, ok, f)
			var data orgTokens
			_, _, ok = readData(env.Data, 0, orgMembers[:], data[:])
			require.True(t, ok, f)
			_, ok = data.organization(env.Time)
			require.True(t, ok, f)
		case EventMembershipCreated:
			var tok membershipTokens
			env, ok := readPlainEnvelope(body, membershipMembers[:], tok[:])
			require.True(t, ok, f)
			m, ok := tok.membership(env.Time)
			require.True(t, ok, f)
			require.True(t, m.Profile, f)
			require.NotEmpty(t, m.OrgID, f)
			require.NotEmpty(t, m.UserID, f)
			var data membershipTokens
			_, _, ok = readData(env.Data, 0, membershipMembers[:], data[:])
			require.True(t, ok, f)
			_, ok = data.membership(env.Time)
			require.True(t, ok, f)
		}
		if f != EventUserCreated {
			continue
		}
		var tok userTokens
		env, ok := readPlainEnvelope(body, userMembers[:], tok[:])
		require.True(t, ok, f)
		_, ok = tok.user(env.Time)
		require.True(t, ok, f)

		var data userTokens
		require.True(t, json.Valid(env.Data))
		_, _, ok = readData(env.Data, 0, userMembers[:], data[:])
		require.True(t, ok, f)
		_, ok = data.user(env.Time)
		require.True(t, ok, f)
	}
}
