package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/testdb"
)

// batchedStore is a store with one writer, recording the size and outcome
// of every INSERT it makes.
type batchedStore struct {
	*eventstore.Store
	mu      sync.Mutex
	flushes []flush
}

type flush struct {
	entries int
	err     error
}

func setupBatched(t *testing.T, maxBatch int) (*batchedStore, *testdb.DB) {
	t.Helper()
	db := testdb.New(t)
	bs := &batchedStore{}
	s, err := eventstore.NewWithConfig(db.Pool, eventstore.Config{
		MaxBatch: maxBatch,
		Writers:  1,
		Flushed: func(entries int, _ time.Duration, err error) {
			bs.mu.Lock()
			bs.flushes = append(bs.flushes, flush{entries, err})
			bs.mu.Unlock()
		},
	})
	require.NoError(t, err)
	bs.Store = s
	t.Cleanup(func() { _ = s.Close() })
	return bs, db
}

// holdWriter makes the store's only writer wait: it appends "msg_hold"
// while an open transaction of the test holds an uncommitted row with the
// same svix-id. release rolls that transaction back, so the held append
// goes through as new; it returns the held append's outcome.
func holdWriter(t *testing.T, s *batchedStore, db *testdb.DB) (release func() error) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	e := entry("msg_hold")
	_, err = tx.Exec(ctx, `INSERT INTO ledger_events (uuid, payload, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at)
		VALUES ('hold', '\x7b7d', $1, 'clerk', now(), 'v1,x', 'user.created', 'user_1', 'ins_1', now(), 'ms', now())`, e.SvixID)
	require.NoError(t, err)
	var holder int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&holder))
	done := make(chan error, 1)
	go func() {
		res, err := s.Append(ctx, e)
		if err == nil && res.Duplicate {
			err = fmt.Errorf("held append reported as duplicate")
		}
		done <- err
	}()
	// The writer is busy once the held append has left the queue and its
	// INSERT waits on the test's row.
	require.Eventually(t, func() bool {
		var waiting bool
		err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, holder).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond)
	return func() error {
		require.NoError(t, tx.Rollback(ctx))
		return <-done
	}
}

// queue starts one append per entry and waits until all of them are
// queued behind the held writer.
func queue(t *testing.T, s *batchedStore, entries []domain.LedgerEntry) ([]domain.AppendResult, []error, *sync.WaitGroup) {
	t.Helper()
	results := make([]domain.AppendResult, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Go(func() { results[i], errs[i] = s.Append(context.Background(), e) })
	}
	require.Eventually(t, func() bool { return eventstore.QueuedAppends(s.Store) == len(entries) }, 10*time.Second, time.Millisecond)
	return results, errs, &wg
}

func TestBatchTellsNewFromDuplicate(t *testing.T) {
	t.Parallel()
	s, db := setupBatched(t, 64)
	ctx := context.Background()
	_, err := s.Append(ctx, entry("msg_old"))
	require.NoError(t, err)

	release := holdWriter(t, s, db)
	// One batch: two new ids, one already in the ledger, one id twice.
	entries := []domain.LedgerEntry{entry("msg_a"), entry("msg_old"), entry("msg_b"), entry("msg_b")}
	results, errs, wg := queue(t, s, entries)
	require.NoError(t, release())
	wg.Wait()

	for i := range entries {
		require.NoError(t, errs[i], entries[i].SvixID)
	}
	require.False(t, results[0].Duplicate, "msg_a is new")
	require.True(t, results[1].Duplicate, "msg_old was in the ledger")
	require.NotEqual(t, results[2].Duplicate, results[3].Duplicate, "of the two msg_b, one is new and the other its duplicate")

	var rows, txs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT transaction_id) FROM ledger_events WHERE svix_id IN ('msg_a', 'msg_b', 'msg_old')`).Scan(&rows, &txs))
	require.Equal(t, 3, rows, "one row per svix-id")
	require.Equal(t, 2, txs, "msg_a and msg_b were committed together")
	require.Contains(t, s.flushes, flush{entries: 4}, "the four queued appends made one INSERT")
}

func TestBadEntryDoesNotFailItsBatch(t *testing.T) {
	t.Parallel()
	s, db := setupBatched(t, 64)
	ctx := context.Background()

	release := holdWriter(t, s, db)
	bad := entry("msg_bad")
	bad.Signature = "" // a Clerk delivery without its signature: refused by a CHECK constraint
	entries := []domain.LedgerEntry{entry("msg_good1"), bad, entry("msg_good2")}
	results, errs, wg := queue(t, s, entries)
	require.NoError(t, release())
	wg.Wait()

	require.NoError(t, errs[0])
	require.False(t, results[0].Duplicate)
	require.NoError(t, errs[2])
	require.False(t, results[2].Duplicate)
	require.Equal(t, domain.EINTERNAL, domain.ErrorCode(errs[1]), "got %v", errs[1])
	require.ErrorContains(t, errs[1], "ledger_events_clerk_signed")

	for _, id := range []string{"msg_good1", "msg_good2"} {
		_, err := s.Get(ctx, id)
		require.NoError(t, err, id)
	}
	_, err := s.Get(ctx, "msg_bad")
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, 3, s.flushes[1].entries, "the three queued appends were tried together first")
	require.Error(t, s.flushes[1].err)
}

func TestAppendAfterCloseIsRefused(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	require.NoError(t, s.Close())
	_, err := s.Append(context.Background(), entry("msg_late"))
	require.Equal(t, domain.EUNAVAILABLE, domain.ErrorCode(err))
	require.Equal(t, "webhookd is shutting down; retry later", domain.ErrorMessage(err))
}
