package seal_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/sealtest"
)

// testKey signs the checkpoints and webhookd's own entries.
var testKey = sealtest.Key

// otherKey is a second fixed key, not webhookd's own.
var otherKey = ed25519.NewKeyFromSeed([]byte("another key, not webhookd's own!"))

// ledger is a real ledger in PostgreSQL sealed by the real sealer
// (internal/sealtest, shared with the bundle package's tests).
type ledger struct{ *sealtest.Ledger }

func setupLedger(t *testing.T) *ledger { return &ledger{sealtest.New(t)} }

var quiet = slog.New(slog.DiscardHandler)

// indexOneWithoutCheckpoint gives the first of the unsealed entries (there
// are unsealed of them) its ledger index, as a sealer that stopped before
// signing a checkpoint would have.
func (l *ledger) indexOneWithoutCheckpoint(unsealed int) {
	l.T.Helper()
	ctx := context.Background()
	pending, err := l.Store.UnsealedEntries(ctx, unsealed+1)
	require.NoError(l.T, err)
	require.Len(l.T, pending, unsealed)
	leaves, err := l.Store.LeafHashes(ctx)
	require.NoError(l.T, err)
	e := seal.EntryFromLedger(pending[0])
	require.NoError(l.T, l.Store.AppendLeaves(ctx, uint64(len(leaves)), []int64{pending[0].Offset}, []merkle.Hash{seal.ComputeLeafHash(&e)}))
}

func TestCanonicalEntryEncoding(t *testing.T) {
	t.Parallel()
	e := seal.Entry{SvixID: "msg_1", Source: "clerk", SvixTimestamp: "2026-11-27T10:00:00.000000Z", Signature: "v1,x",
		EventType: "user.created", SubjectID: "user_1", InstanceID: "ins_1", EventTime: "2022-05-31T15:56:31.835000Z",
		TimestampUnit: "ms", ReceivedAt: "2026-11-27T10:00:00.123456Z", SourceIP: "203.0.113.9", Payload: []byte(`{"a":1}`)}
	got := seal.CanonicalEntry(&e)
	want := "\x00\x00\x00\x18webhookd-ledger-entry-v1" + "\x00\x00\x00\x05msg_1" + "\x00\x00\x00\x05clerk" +
		"\x00\x00\x00\x1b2026-11-27T10:00:00.000000Z" + "\x00\x00\x00\x04v1,x" + "\x00\x00\x00\x0cuser.created" +
		"\x00\x00\x00\x06user_1" + "\x00\x00\x00\x05ins_1" + "\x00\x00\x00\x1b2022-05-31T15:56:31.835000Z" +
		"\x00\x00\x00\x02ms" + "\x00\x00\x00\x1b2026-11-27T10:00:00.123456Z" + "\x00\x00\x00\x0b203.0.113.9" +
		"\x00\x00\x00\x07{\"a\":1}"
	require.Equal(t, want, string(got))
	require.Equal(t, merkle.LeafHash([]byte(want)), seal.ComputeLeafHash(&e))
	// Moving a byte between neighbouring fields changes the encoding.
	moved := e
	moved.SvixID, moved.Source = "msg_1c", "lerk"
	require.NotEqual(t, got, seal.CanonicalEntry(&moved))
}

// A LeafHasher reused across entries of different sizes gives each one the
// leaf hash of its own canonical encoding, whatever its buffer held before.
func TestLeafHasherReusedMatchesComputeLeafHash(t *testing.T) {
	t.Parallel()
	long := seal.Entry{SvixID: "msg_long", Source: "clerk", EventType: "user.updated", SubjectID: "user_1",
		EventTime: "2026-11-27T10:00:00.000000Z", TimestampUnit: "ms", ReceivedAt: "2026-11-27T10:00:00.123456Z",
		Payload: []byte(strings.Repeat(`{"a":1}`, 500))}
	short := long
	short.SvixID, short.Payload = "msg_s", []byte(`{}`)
	empty := seal.Entry{}
	var h seal.LeafHasher
	for _, e := range []*seal.Entry{&long, &short, &empty, &long, &short} {
		require.Equal(t, merkle.LeafHash(seal.CanonicalEntry(e)), h.Sum(e))
		require.Equal(t, seal.ComputeLeafHash(e), h.Sum(e))
	}
	require.NotEqual(t, h.Sum(&long), h.Sum(&short))
}

func TestSigningKeyFormats(t *testing.T) {
	t.Parallel()
	seed := base64.StdEncoding.EncodeToString(testKey.Seed())
	k, err := seal.ParseSigningKey(seed)
	require.NoError(t, err)
	require.Equal(t, testKey, k)
	k, err = seal.ParseSigningKey(base64.StdEncoding.EncodeToString(testKey))
	require.NoError(t, err)
	require.Equal(t, testKey, k)

	_, err = seal.ParseSigningKey("not-a-key")
	require.EqualError(t, err, "WEBHOOKD_SIGNING_KEY is neither the base64 of an Ed25519 key nor a readable key file")
	pub, err := seal.ParsePublicKey(seal.EncodePublicKeyPEM(testKey.Public().(ed25519.PublicKey)))
	require.NoError(t, err)
	require.Equal(t, testKey.Public(), pub)
}

func TestSealerIndexesGaplessAndSignsCheckpoints(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(5, "")
	cp := l.Seal()
	require.EqualValues(t, 5, cp.TreeSize)
	require.NoError(t, cp.VerifySignature(testKey.Public().(ed25519.PublicKey)))

	leaves, err := l.Store.LeafHashes(context.Background())
	require.NoError(t, err)
	require.Len(t, leaves, 5)
	require.Equal(t, merkle.RootFromLeaves(leaves), cp.RootHash)

	// Nothing new: no new checkpoint.
	require.Equal(t, cp, l.Seal())
	l.Add(3, "")
	cp2 := l.Seal()
	require.EqualValues(t, 8, cp2.TreeSize)
	all, err := l.Store.Checkpoints(context.Background())
	require.NoError(t, err)
	require.Equal(t, []seal.Checkpoint{cp, cp2}, all)

	// The seal tables are append-only.
	_, err = l.DB.Pool.Exec(context.Background(), `UPDATE ledger_index SET leaf_hash = leaf_hash`)
	require.ErrorContains(t, err, "ledger_index is append-only: UPDATE is not allowed")
	_, err = l.DB.Pool.Exec(context.Background(), `DELETE FROM ledger_checkpoints`)
	require.ErrorContains(t, err, "ledger_checkpoints is append-only: DELETE is not allowed")
	_, err = l.DB.Pool.Exec(context.Background(), `TRUNCATE ledger_index`)
	require.ErrorContains(t, err, "ledger_index is append-only: TRUNCATE is not allowed")
	_, err = l.DB.Pool.Exec(context.Background(), `INSERT INTO ledger_index SELECT 10, ledger_offset + 1000000, leaf_hash FROM ledger_index WHERE ledger_index = 0`)
	require.ErrorContains(t, err, "ledger_index must be gapless: got 10, next is 8")

	// A second writer that did not see the first's leaves is refused.
	err = l.Store.AppendLeaves(context.Background(), 5, []int64{1}, []merkle.Hash{{}})
	require.ErrorIs(t, err, eventstore.ErrSealConflict)
}

func TestSealerRefusesLeavesThatDoNotGiveTheSignedRoot(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(4, "")
	cp := l.Seal()
	ctx := context.Background()
	_, err := l.DB.Pool.Exec(ctx, `ALTER TABLE ledger_index DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = l.DB.Pool.Exec(ctx, `UPDATE ledger_index SET leaf_hash = sha256(leaf_hash) WHERE ledger_index = 2`)
	require.NoError(t, err)
	_, err = l.DB.Pool.Exec(ctx, `ALTER TABLE ledger_index ENABLE TRIGGER USER`)
	require.NoError(t, err)

	_, err = seal.SealOnce(ctx, seal.SealerConfig{Ledger: l.Store, Key: testKey, Logger: quiet})
	require.ErrorIs(t, err, seal.ErrIntegrity)
	leaves, lerr := l.Store.LeafHashes(ctx)
	require.NoError(t, lerr)
	require.EqualError(t, err, fmt.Sprintf("ledger integrity check failed: the stored leaf hashes give root %s at tree size 4, the last checkpoint in ledger_checkpoints says %s",
		merkle.RootFromLeaves(leaves), cp.RootHash))
}

// A sealer that indexed entries but stopped before signing them restarts
// from a tree larger than its last checkpoint: the checkpoint is checked
// against the root at its own size, and the next one covers the rest.
func TestSealerRestartsFromLeavesBeyondTheLastCheckpoint(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(4, "")
	cp := l.Seal()
	l.Add(3, "")
	ctx := context.Background()
	l.indexOneWithoutCheckpoint(3)

	next := l.Seal()
	require.EqualValues(t, 7, next.TreeSize)
	leaves, err := l.Store.LeafHashes(ctx)
	require.NoError(t, err)
	require.Equal(t, merkle.RootFromLeaves(leaves), next.RootHash)
	all, err := l.Store.Checkpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, cp, all[len(all)-2])
}

func TestSealerRefusesACheckpointLargerThanTheIndex(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(6, "")
	l.Seal()
	ctx := context.Background()
	for _, q := range []string{
		`ALTER TABLE ledger_index DISABLE TRIGGER USER`,
		`DELETE FROM ledger_index WHERE ledger_index >= 4`,
		`ALTER TABLE ledger_index ENABLE TRIGGER USER`,
	} {
		_, err := l.DB.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	_, err := seal.SealOnce(ctx, seal.SealerConfig{Ledger: l.Store, Key: testKey, Logger: quiet})
	require.ErrorIs(t, err, seal.ErrIntegrity)
	require.EqualError(t, err, "ledger integrity check failed: ledger_index holds 4 entries but the last checkpoint in ledger_checkpoints covers 6: index rows were removed")
}

// SealLag names the oldest entry no checkpoint covers, whether the sealer
// has not indexed it yet or indexed it without signing a checkpoint.
func TestSealLagIsTheFirstEntryNoCheckpointCovers(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	lag, err := l.Store.SealLag(ctx)
	require.NoError(t, err)
	require.Equal(t, eventstore.SealLag{}, lag, "empty ledger")

	received := func(n int) time.Time { // of the nth entry l.add appends
		return time.Date(2026, 11, 27, 10, 0, n-1, 123000, time.UTC) // stored to the µs
	}
	l.Add(2, "")
	lag, err = l.Store.SealLag(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 0, lag.TreeSize)
	require.NotNil(t, lag.OldestUncovered)
	require.Equal(t, received(1), lag.OldestUncovered.UTC(), "not indexed, no checkpoint")

	l.Seal()
	lag, err = l.Store.SealLag(ctx)
	require.NoError(t, err)
	require.Equal(t, eventstore.SealLag{TreeSize: 2}, lag, "all covered")

	l.Add(2, "")
	lag, err = l.Store.SealLag(ctx)
	require.NoError(t, err)
	require.Equal(t, received(3), lag.OldestUncovered.UTC(), "not indexed")

	l.indexOneWithoutCheckpoint(2)
	lag, err = l.Store.SealLag(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, lag.TreeSize)
	require.Equal(t, received(3), lag.OldestUncovered.UTC(), "indexed, not in a checkpoint")
}

// stopDuring cancels the sealer's context from inside one of its database
// calls, once every entry is indexed: a stop that arrives mid-statement.
type stopDuring struct {
	seal.SealLedger
	seal.LeaderLock
	ready  func() bool
	cancel context.CancelFunc
	in     string // "check" or "scan"
}

func (s *stopDuring) stopNow(ctx context.Context, in string) error {
	if s.in != in || !s.ready() {
		return nil
	}
	s.cancel()
	return ctx.Err()
}

func (s *stopDuring) Check(ctx context.Context) error {
	if err := s.stopNow(ctx, "check"); err != nil {
		return err
	}
	return s.LeaderLock.Check(ctx)
}

func (s *stopDuring) UnsealedEntries(ctx context.Context, limit int) ([]domain.LedgerEntry, error) {
	if err := s.stopNow(ctx, "scan"); err != nil {
		return nil, err
	}
	return s.SealLedger.UnsealedEntries(ctx, limit)
}

// A sealer stopped while one of its statements runs still signs a last
// checkpoint of what it indexed (a stop used to skip it whenever it
// arrived during a statement rather than between polls).
func TestSealerStoppedMidStatementLeavesACheckpoint(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"check", "scan"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			l := setupLedger(t)
			l.Add(4, "")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := &stopDuring{SealLedger: l.Store, cancel: cancel, in: in, ready: func() bool {
				var n int
				require.NoError(t, l.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_index`).Scan(&n))
				return n == 4
			}}
			sealer := seal.NewSealer(seal.SealerConfig{
				Ledger: stop, Key: testKey, Logger: quiet, Interval: time.Hour, PollInterval: time.Millisecond,
				NewLock: func(ctx context.Context) (seal.LeaderLock, error) {
					lock, err := l.Store.NewSealerLock(ctx)
					stop.LeaderLock = lock
					return stop, err
				},
			})
			require.NoError(t, sealer.Run(ctx))
			cp, err := l.Store.LatestCheckpoint(context.Background())
			require.NoError(t, err, "no checkpoint after the stop")
			require.EqualValues(t, 4, cp.TreeSize)
			leaves, err := l.Store.LeafHashes(context.Background())
			require.NoError(t, err)
			require.Equal(t, merkle.RootFromLeaves(leaves), cp.RootHash)
		})
	}
}
