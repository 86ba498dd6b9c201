// Package sealtest is the tests' sealed ledger: a real ledger in
// PostgreSQL (a fresh schema per test) holding realistic Clerk events,
// sealed by the real sealer. The seal and bundle packages' tests share it.
package sealtest

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

// Key is a fixed signing key so failures reproduce.
var Key = ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))

// Ledger is a test's ledger: N entries appended so far, the last received
// at Now minus a second.
type Ledger struct {
	T     *testing.T
	DB    *testdb.DB
	Store *eventstore.Store
	Now   time.Time
	N     int
}

// New opens a ledger on a fresh schema; it is closed when the test ends.
func New(t *testing.T) *Ledger {
	t.Helper()
	db := testdb.New(t)
	s, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return &Ledger{T: t, DB: db, Store: s, Now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// Add appends n realistic Clerk events for user (or a new user when "")
// received one second apart.
func (l *Ledger) Add(n int, user string) {
	l.T.Helper()
	types := []string{"user.created", "user.updated", "session.created", "user.deleted"}
	for range n {
		l.N++
		typ := types[l.N%len(types)]
		body := clerkfake.MustBuild(typ, clerkfake.Options{Seed: int64(l.N), UserID: user, Time: l.Now})
		env, err := domain.ParseEnvelope(body)
		require.NoError(l.T, err)
		_, err = l.Store.Append(context.Background(), domain.LedgerEntry{
			SvixID: fmt.Sprintf("msg_%04d", l.N), SvixTimestamp: l.Now, Signature: "v1,c2lnbmF0dXJl",
			Source: domain.SourceClerk, EventType: env.Type, SubjectID: env.SubjectID, InstanceID: env.InstanceID,
			EventTime: env.Time, TimestampUnit: env.TimestampUnit, ReceivedAt: l.Now.Add(123456 * time.Nanosecond),
			SourceIP: "203.0.113.9", Payload: body,
		})
		require.NoError(l.T, err)
		l.Now = l.Now.Add(time.Second)
	}
}

// Seal seals every entry appended so far into a checkpoint signed by Key.
func (l *Ledger) Seal() seal.Checkpoint {
	l.T.Helper()
	return l.SealWith(Key)
}

// SealWith seals every entry appended so far into a checkpoint signed by key.
func (l *Ledger) SealWith(key ed25519.PrivateKey) seal.Checkpoint {
	l.T.Helper()
	cp, err := seal.SealOnce(context.Background(), seal.SealerConfig{Ledger: l.Store, Key: key, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return l.Now }})
	require.NoError(l.T, err)
	require.EqualValues(l.T, l.N, cp.TreeSize, "the checkpoint covers every committed entry")
	return cp
}

// SealVerified runs one sealing pass that checks every entry's origin with
// v, and returns the checkpoint and error.
func (l *Ledger) SealVerified(v *seal.OriginVerifier) (seal.Checkpoint, error) {
	l.T.Helper()
	return seal.SealOnce(context.Background(), seal.SealerConfig{Ledger: l.Store, Key: Key, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return l.Now }, VerifyOrigin: v.Verify})
}

// Indexed is the number of ledger entries the sealer has indexed.
func (l *Ledger) Indexed() int64 {
	l.T.Helper()
	n, err := l.Store.IndexedCount(context.Background())
	require.NoError(l.T, err)
	return n
}
