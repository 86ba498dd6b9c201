package bundle_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/internal/sealtest"
)

// The bundle tests export from a real ledger (PostgreSQL) that the real
// sealer has sealed (internal/sealtest, shared with the seal package's
// tests).
type ledger struct{ *sealtest.Ledger }

func setupLedger(t *testing.T) *ledger { return &ledger{sealtest.New(t)} }

// testKey signs the checkpoints and webhookd's own entries.
var testKey = sealtest.Key

// exportSecret is a Clerk signing secret for the origin checks the bundle
// tests make: the rows they check are webhookd's own (export records), so
// any secret serves.
const exportSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

// verifier checks origins as webhookd does, trusting testKey for
// webhookd's own entries.
func verifier(t *testing.T, secrets ...string) *seal.OriginVerifier {
	t.Helper()
	v, err := seal.NewOriginVerifier(secrets, testKey.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return v
}
