package eventstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/testdb"
)

// rawInsert is a client other than webhookd appending one row with SQL.
const rawInsert = `INSERT INTO ledger_events (uuid, payload, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at)
	VALUES ('raw', '\x7b7d', $1, 'webhookd', 'webhookd.test', 'user_1', 'ins_1', now(), 'ms', now())`

func appendN(t *testing.T, s *eventstore.Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		_, err := s.Append(context.Background(), entry(fmt.Sprintf("%s_%d", prefix, i)))
		require.NoError(t, err)
	}
}

func scanAll(t *testing.T, db *testdb.DB) []eventstore.Scanned {
	t.Helper()
	got, err := eventstore.ScanAfter(context.Background(), db.Pool, eventstore.Position{}, eventstore.Position{}, 1000)
	require.NoError(t, err)
	return got
}

// An idle transaction elsewhere on the server (another database, or this
// one) used to stop every ordered reader: they read only below the
// server-wide transaction-id horizon. Readers now pass it at once.
func TestReadersPassForeignTransactions(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"another database", "the same database"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			s, db := setup(t)
			if where == "another database" {
				testdb.HoldForeignTransaction(t)
			} else {
				testdb.HoldTransaction(t, testdb.ServerURL())
			}
			appendN(t, s, "msg_after_foreign", 5)

			got := scanAll(t, db)
			require.Len(t, got, 5, "ScanAfter reads every committed entry")
			unsealed, err := s.UnsealedEntries(context.Background(), 100)
			require.NoError(t, err)
			require.Len(t, unsealed, 5, "the sealer reads every committed entry")
		})
	}
}

// Appends commit in (transaction_id, offset) order, whatever the number of
// writers and processes: offsets are assigned under the append lock, so
// offset order is commit order, and it equals (transaction_id, offset)
// order. A reader following that order while the appends run sees every
// entry once, and never one behind its position.
func TestConcurrentAppendersCommitInOrder(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var stores []*eventstore.Store
	for range 2 { // two webhookd processes on one schema
		pool := testdb.Pool(t, db.URL)
		s, err := eventstore.NewWithConfig(pool, eventstore.Config{Writers: 2, MaxBatch: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	const perWorker, workers = 40, 8
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				_, err := stores[w%2].Append(ctx, entry(fmt.Sprintf("msg_w%d_%d", w, i)))
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// A reader following the ledger during the appends.
	seen := map[string]int{}
	pos := eventstore.Position{}
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		batch, err := eventstore.ScanAfter(ctx, db.Pool, pos, eventstore.Position{}, 7)
		require.NoError(t, err)
		for _, e := range batch {
			seen[e.SvixID]++
			pos = e.Position
		}
		if finished && len(batch) == 0 {
			break
		}
	}
	require.Len(t, seen, workers*perWorker, "the reader saw every entry")
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}

	rows, err := db.Pool.Query(ctx, `SELECT transaction_id::text::bigint FROM ledger_events ORDER BY "offset"`)
	require.NoError(t, err)
	txs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.True(t, slices.IsSorted(txs), "in offset (commit) order, transaction ids never go down: %v", txs)
}

// A client that took its transaction id before appending (BEGIN; SELECT
// pg_current_xact_id(); …; INSERT) would commit entries ordered before
// entries appended meanwhile, which readers may have passed. It is refused,
// whatever its isolation level.
func TestAppendWithEarlierTransactionIDIsRefused(t *testing.T) {
	t.Parallel()
	for _, iso := range []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			t.Parallel()
			s, db := setup(t)
			ctx := context.Background()
			conn, err := db.Pool.Acquire(ctx)
			require.NoError(t, err)
			defer conn.Release()
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			var early int64
			require.NoError(t, tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&early))

			appendN(t, s, "msg_meanwhile", 1) // commits with a later transaction id

			_, err = tx.Exec(ctx, rawInsert, "msg_backdated")
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "40001", pgErr.Code)
			require.Contains(t, pgErr.Message, fmt.Sprintf("ledger_events: transaction %d took its transaction id before transaction", early))
			require.Contains(t, pgErr.Hint, "Retry in a new transaction whose first write is the INSERT into ledger_events")
			require.NoError(t, tx.Rollback(ctx))

			got := scanAll(t, db)
			require.Len(t, got, 1)
			require.Equal(t, "msg_meanwhile_0", got[0].SvixID)

			// Retried as the hint says, it goes in, after what was there.
			_, err = db.Pool.Exec(ctx, rawInsert, "msg_backdated")
			require.NoError(t, err)
			got = scanAll(t, db)
			require.Len(t, got, 2)
			require.Equal(t, "msg_backdated", got[1].SvixID)
		})
	}
}

// A transaction that took its id early but in which nobody appended
// since is not refused (nothing can be ordered after it yet), and a
// transaction may append with several statements.
func TestAppendWithEarlyIDAndNoAppendSinceGoesIn(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT pg_current_xact_id()`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, rawInsert, "msg_one")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, rawInsert, "msg_two")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Len(t, scanAll(t, db), 2)
}

// The triggers assign transaction_id and offset: an INSERT that names
// them (to backdate an entry, or to take an offset a later append would
// collide with) gets the real ones.
func TestClientCannotChooseTransactionIDOrOffset(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	var (
		xid, off, current int64
	)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO ledger_events (uuid, payload, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, transaction_id, "offset")
			VALUES ('raw', '\x7b7d', 'msg_chosen', 'webhookd', 'webhookd.test', 'user_1', 'ins_1', now(), 'ms', now(), '3', 4611686018427387904)
			RETURNING transaction_id::text::bigint, "offset"`).Scan(&xid, &off); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&current)
	})
	require.NoError(t, err)
	require.Equal(t, current, xid, "transaction_id is the inserting transaction's")
	require.EqualValues(t, 1, off, "offset comes from the ledger's sequence")
}

// The append lock is taken by the statement trigger before any row is
// computed, so a VALUES expression that gives the transaction its id (as
// webhookd before migration 4 sent pg_current_xact_id() for
// transaction_id) runs under the lock: an INSERT that had to wait for
// another append is not refused for an id taken while it waited.
func TestAppendLockIsTakenBeforeValuesAreComputed(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()

	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `SELECT pg_advisory_xact_lock(2003331429, 'ledger_events'::regclass::oid::integer)`)
	require.NoError(t, err)

	inserted := make(chan error, 1)
	go func() {
		_, err := db.Pool.Exec(ctx, `INSERT INTO ledger_events (uuid, payload, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, transaction_id)
			VALUES ('raw', '\x7b7d', 'msg_waited', 'webhookd', 'webhookd.test', 'user_1', 'ins_1', now(), 'ms', now(), pg_current_xact_id())`)
		inserted <- err
	}()
	require.Eventually(t, func() bool {
		l, err := s.AppendLockState(ctx)
		require.NoError(t, err)
		return l.Waiting == 1
	}, 10*time.Second, 5*time.Millisecond, "the INSERT waits for the lock")
	// The holder appends (its transaction id is newer than any the
	// waiting INSERT could have taken before waiting) and commits.
	_, err = holder.Exec(ctx, rawInsert, "msg_holder")
	require.NoError(t, err)
	require.NoError(t, holder.Commit(ctx))
	require.NoError(t, <-inserted)

	got := scanAll(t, db)
	require.Len(t, got, 2)
	require.Equal(t, []string{"msg_holder", "msg_waited"}, []string{got[0].SvixID, got[1].SvixID})
}

// A transaction that appended and stays open holds the append lock:
// AppendLockState names it and counts the appends waiting for it; readers
// see nothing of it or of the waiting appends, and once it commits they
// read everything, the held entry first.
func TestOpenAppenderHoldsReadersAndShows(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	appendN(t, s, "msg_before", 2)

	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, rawInsert, "msg_held")
	require.NoError(t, err)
	var pid int32
	require.NoError(t, holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))

	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, entry("msg_waiting"))
		appended <- err
	}()
	var l eventstore.AppendLock
	require.Eventually(t, func() bool {
		l, err = s.AppendLockState(ctx)
		require.NoError(t, err)
		return l.Waiting == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.NotNil(t, l.Holder)
	require.Equal(t, pid, l.Holder.PID)
	require.Equal(t, "idle in transaction", l.Holder.State)
	require.Positive(t, l.Holder.Age)
	require.Len(t, scanAll(t, db), 2, "readers see what was committed before")

	require.NoError(t, holder.Commit(ctx))
	require.NoError(t, <-appended)
	got := scanAll(t, db)
	var ids []string
	for _, e := range got {
		ids = append(ids, e.SvixID)
	}
	require.Equal(t, []string{"msg_before_0", "msg_before_1", "msg_held", "msg_waiting"}, ids)
	l, err = s.AppendLockState(ctx)
	require.NoError(t, err)
	require.Nil(t, l.Holder)
	require.Zero(t, l.Waiting)
}
