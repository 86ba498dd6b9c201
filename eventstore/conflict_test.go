package eventstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/testdb"
)

func setupConflicts(t *testing.T) (*eventstore.Store, *testdb.DB, func() []eventstore.Conflict) {
	t.Helper()
	db := testdb.New(t)
	var mu sync.Mutex
	var seen []eventstore.Conflict
	s, err := eventstore.NewWithConfig(db.Pool, eventstore.Config{Conflicted: func(c eventstore.Conflict) {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, db, func() []eventstore.Conflict {
		mu.Lock()
		defer mu.Unlock()
		return append([]eventstore.Conflict(nil), seen...)
	}
}

func sum(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

type conflictRow struct {
	stored, received string
	payload          []byte
	sourceIP         string
	signature        string
}

func conflictRows(t *testing.T, db *testdb.DB, svixID string) []conflictRow {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT encode(stored_sha256, 'hex'), encode(received_sha256, 'hex'), payload, host(source_ip), signature
		FROM ledger_conflicts WHERE svix_id = $1 ORDER BY id`, svixID)
	require.NoError(t, err)
	defer rows.Close()
	var out []conflictRow
	for rows.Next() {
		var r conflictRow
		require.NoError(t, rows.Scan(&r.stored, &r.received, &r.payload, &r.sourceIP, &r.signature))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestDuplicateWithAnotherBodyIsRecorded: the same svix-id with a
// different body is still a duplicate (the ledger keeps the first), and
// the other body is kept in ledger_conflicts with both digests, once per
// distinct body; the same body again is a plain duplicate.
func TestDuplicateWithAnotherBodyIsRecorded(t *testing.T) {
	t.Parallel()
	s, db, conflicts := setupConflicts(t)
	ctx := context.Background()
	first := entry("msg_conflict")
	res, err := s.Append(ctx, first)
	require.NoError(t, err)
	require.False(t, res.Duplicate)

	// The same body again: a plain duplicate.
	res, err = s.Append(ctx, first)
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	require.Empty(t, conflicts())
	require.Empty(t, conflictRows(t, db, "msg_conflict"))

	// Another body (one byte more) under the same id, from elsewhere.
	other := entry("msg_conflict")
	other.Payload = append(append([]byte(nil), first.Payload...), ' ')
	other.SourceIP = "198.51.100.23"
	other.Signature = "v1,other="
	for range 2 { // the second is Svix retrying it
		res, err = s.Append(ctx, other)
		require.NoError(t, err)
		require.True(t, res.Duplicate)
	}
	want := eventstore.Conflict{SvixID: "msg_conflict", StoredSHA256: sum(first.Payload), ReceivedSHA256: sum(other.Payload), SourceIP: "198.51.100.23", Recorded: true}
	again := want
	again.Recorded = false
	require.Equal(t, []eventstore.Conflict{want, again}, conflicts())
	require.Equal(t, []conflictRow{{stored: sum(first.Payload), received: sum(other.Payload), payload: other.Payload, sourceIP: "198.51.100.23", signature: "v1,other="}},
		conflictRows(t, db, "msg_conflict"))

	// The ledger still holds the first body, alone.
	got, err := s.Get(ctx, "msg_conflict")
	require.NoError(t, err)
	require.Equal(t, first.Payload, got.Payload)
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// A third body is a second conflict row.
	third := entry("msg_conflict")
	third.Payload = []byte(`{"type":"user.created"}`)
	_, err = s.Append(ctx, third)
	require.NoError(t, err)
	require.Len(t, conflictRows(t, db, "msg_conflict"), 2)

	// The table is append-only.
	for _, stmt := range []string{`UPDATE ledger_conflicts SET payload = '\x00'`, `DELETE FROM ledger_conflicts`, `TRUNCATE ledger_conflicts`} {
		_, err = db.Pool.Exec(ctx, stmt)
		require.ErrorContains(t, err, "ledger_conflicts is append-only", stmt)
	}
}

// TestRacingAppendsWithDifferentBodies: two appends of one svix-id with
// different bodies at once (in one batch or two): one is appended, the
// other is a duplicate recorded as a conflict against the winner's body.
func TestRacingAppendsWithDifferentBodies(t *testing.T) {
	t.Parallel()
	s, db, conflicts := setupConflicts(t)
	a, b := entry("msg_race"), entry("msg_race")
	b.Payload = []byte(`{"type":"user.updated"}`)
	results := make([]domain.AppendResult, 2)
	var wg sync.WaitGroup
	for i, e := range []domain.LedgerEntry{a, b} {
		wg.Go(func() {
			res, err := s.Append(context.Background(), e)
			require.NoError(t, err)
			results[i] = res
		})
	}
	wg.Wait()
	require.NotEqual(t, results[0].Duplicate, results[1].Duplicate, "exactly one is appended")
	winner, loser := a, b
	if results[0].Duplicate {
		winner, loser = b, a
	}
	got, err := s.Get(context.Background(), "msg_race")
	require.NoError(t, err)
	require.Equal(t, winner.Payload, got.Payload)
	rows := conflictRows(t, db, "msg_race")
	require.Len(t, rows, 1)
	require.Equal(t, loser.Payload, rows[0].payload)
	require.Equal(t, sum(winner.Payload), rows[0].stored)
	require.Len(t, conflicts(), 1)
}
