package bundle_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// The bundle tests export from a real ledger (PostgreSQL) that the real
// sealer has sealed; the seal package's tests keep their own copy of this
// helper, since test files cannot be shared between packages.

// testKey is a fixed signing key (seed 0x01…) so failures reproduce.
var testKey = ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))

type ledger struct {
	t     *testing.T
	db    *testdb.DB
	store *eventstore.Store
	now   time.Time
	n     int
}

func setupLedger(t *testing.T) *ledger {
	t.Helper()
	db := testdb.New(t)
	s, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return &ledger{t: t, db: db, store: s, now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// add appends n realistic Clerk events for user (or a new user when "")
// received one second apart.
func (l *ledger) add(n int, user string) {
	l.t.Helper()
	types := []string{"user.created", "user.updated", "session.created", "user.deleted"}
	for range n {
		l.n++
		typ := types[l.n%len(types)]
		body := clerkfake.MustBuild(typ, clerkfake.Options{Seed: int64(l.n), UserID: user, Time: l.now})
		env, err := domain.ParseEnvelope(body)
		require.NoError(l.t, err)
		_, err = l.store.Append(context.Background(), domain.LedgerEntry{
			SvixID: fmt.Sprintf("msg_%04d", l.n), SvixTimestamp: l.now, Signature: "v1,c2lnbmF0dXJl",
			Source: domain.SourceClerk, EventType: env.Type, SubjectID: env.SubjectID, InstanceID: env.InstanceID,
			EventTime: env.Time, TimestampUnit: env.TimestampUnit, ReceivedAt: l.now.Add(123456 * time.Nanosecond),
			SourceIP: "203.0.113.9", Payload: body,
		})
		require.NoError(l.t, err)
		l.now = l.now.Add(time.Second)
	}
}

// seal seals every entry appended so far into a checkpoint.
func (l *ledger) seal() seal.Checkpoint {
	l.t.Helper()
	return l.sealWith(testKey)
}

func (l *ledger) sealWith(key ed25519.PrivateKey) seal.Checkpoint {
	l.t.Helper()
	cp, err := seal.SealOnce(context.Background(), seal.SealerConfig{Ledger: l.store, Key: key, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return l.now }})
	require.NoError(l.t, err)
	require.EqualValues(l.t, l.n, cp.TreeSize, "the checkpoint covers every committed entry")
	return cp
}

// indexed is the number of ledger entries the sealer has indexed.
func (l *ledger) indexed() int64 {
	l.t.Helper()
	n, err := l.store.IndexedCount(context.Background())
	require.NoError(l.t, err)
	return n
}

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

// sealVerified runs one sealing pass that checks every entry's origin with
// v, and returns the checkpoint and error.
func (l *ledger) sealVerified(v *seal.OriginVerifier) (seal.Checkpoint, error) {
	l.t.Helper()
	return seal.SealOnce(context.Background(), seal.SealerConfig{Ledger: l.store, Key: testKey, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return l.now }, VerifyOrigin: v.Verify})
}
