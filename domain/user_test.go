package domain

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/fixtures"
)

// TestClerkEventsTakeTheSinglePass checks that Clerk's own example bodies
// are read by the single pass, not by the reference fallback. The
// fallback gives the same results, so without this test (and the
// benchmarks) nothing would notice the single pass giving up on real
// events.
func TestClerkEventsTakeTheSinglePass(t *testing.T) {
	t.Parallel()
	types := fixtures.ClerkEventTypes()
	require.Len(t, types, 5)
	for _, f := range types {
		body := fixtures.ClerkEvent(f)
		_, ok := readPlainEnvelope(body, nil)
		require.True(t, ok, f)
		if f != EventUserCreated {
			continue
		}
		var tok userTokens
		env, ok := readPlainEnvelope(body, &tok)
		require.True(t, ok, f)
		_, ok = tok.user(env.Time)
		require.True(t, ok, f)

		var data userTokens
		require.True(t, json.Valid(env.Data))
		_, _, ok = readData(env.Data, 0, &data)
		require.True(t, ok, f)
		_, ok = data.user(env.Time)
		require.True(t, ok, f)
	}
}
