package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// usersCount is the number of rows in the users read model.
func usersCount(t *testing.T, db *testdb.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n))
	return n
}

// An idle transaction in another database of the server (a BI tool, a
// migration left open) used to stop the users projection and the sealer
// until it ended: they waited on the server-wide transaction-id horizon.
// Now two webhookd processes appending at once on one schema are
// projected and sealed past it, in commit order.
func TestForeignTransactionDoesNotFreezeReadModels(t *testing.T) {
	t.Parallel()
	testdb.HoldForeignTransaction(t)
	db := testdb.New(t)
	a := startOn(t, db, withSeal(sealKey))
	b := startOn(t, db, withSeal(sealKey))

	var wg sync.WaitGroup
	wg.Go(func() { a.deliverN(0, 10) })
	wg.Go(func() { b.deliverN(10, 10) })
	wg.Wait()

	require.Eventually(t, func() bool { return usersCount(t, db) == 20 }, 20*time.Second, 10*time.Millisecond,
		"the users projection applies every delivery")
	a.waitCheckpoint(20)
	requireGaplessIndex(t, db, 20)
	// Every projection catches up (practices and memberships skip these
	// entries, which are not theirs).
	require.Eventually(t, func() bool {
		ready := a.get("/readyz")
		return ready.status == http.StatusOK && assert.ObjectsAreEqual([]any{map[string]any{"projection": "users", "events": 0.0, "seconds": 0.0},
			map[string]any{"projection": "practices", "events": 0.0, "seconds": 0.0},
			map[string]any{"projection": "memberships", "events": 0.0, "seconds": 0.0}}, ready.body["checks"].(map[string]any)["projections"])
	}, 20*time.Second, 10*time.Millisecond)

	// The sealer indexed the ledger in commit order, which is offset order
	// and (transaction_id, offset) order.
	rows, err := db.Pool.Query(context.Background(), `SELECT e."offset" FROM ledger_index i JOIN ledger_events e ON e."offset" = i.ledger_offset ORDER BY i.ledger_index`)
	require.NoError(t, err)
	offsets, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.True(t, slices.IsSorted(offsets), "ledger index order is offset order: %v", offsets)
}

// A transaction that appended to the ledger and stays open holds the
// append lock: appends and readers wait for it. /readyz names it as
// "waiting_on_transaction" (pid, age) once it has held the lock for longer
// than the limit, /metrics shows its age and the waiting appends, and
// once it commits its entry and the waiting ones are all projected and
// sealed: nothing was skipped.
func TestOpenAppenderShowsOnReadyzAndMetrics(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	h := startOn(t, db, withSeal(sealKey), withConfig(func(c *AppConfig) { c.MaxLockHold = time.Nanosecond }))
	h.deliverN(0, 2)
	h.waitCheckpoint(2)

	ctx := context.Background()
	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	// A Clerk row as ingress would write it (signed: the sealer and the
	// projection check its origin).
	body := clerkfake.MustBuild("user.created", clerkfake.Options{ID: "user_held", Time: h.now})
	env, err := domain.ParseEnvelope(body)
	require.NoError(t, err)
	heldHeaders := signed(t, testSecret, "msg_held", h.now, body)
	_, err = holder.Exec(ctx, `INSERT INTO ledger_events (uuid, payload, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at)
		VALUES ('held', $1, 'msg_held', 'clerk', $2, $3, 'user.created', 'user_held', $4, $5, $6, now())`,
		body, h.now.Truncate(time.Second), heldHeaders.Get("svix-signature"), env.InstanceID, env.Time, env.TimestampUnit)
	require.NoError(t, err)
	var pid int32
	require.NoError(t, holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))

	delivered := make(chan int, 1)
	waitingBody := clerkfake.MustBuild("user.created", clerkfake.Options{ID: "user_waiting", Time: h.now})
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(waitingBody))
	require.NoError(t, err)
	req.Header = signed(t, testSecret, "msg_waiting", h.now, waitingBody)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			delivered <- 0
			return
		}
		resp.Body.Close()
		delivered <- resp.StatusCode
	}()

	var lock map[string]any
	require.Eventually(t, func() bool {
		a := h.get("/readyz")
		lock, _ = a.body["checks"].(map[string]any)["ledger_append_lock"].(map[string]any)
		return a.status == http.StatusServiceUnavailable && lock != nil && lock["waiting"] == 1.0
	}, 10*time.Second, 10*time.Millisecond, "readyz shows the delivery waiting on the open transaction")
	require.Equal(t, "waiting_on_transaction", lock["state"])
	require.EqualValues(t, pid, lock["pid"])
	require.Equal(t, "idle in transaction", lock["transaction_state"])
	require.Positive(t, lock["seconds"])
	require.Contains(t, lock["message"], fmt.Sprintf("waiting on transaction: backend pid %d has held the ledger's append lock for", pid))
	m := scrape(t, h)
	require.Equal(t, 1.0, m.value("webhookd_ledger_append_lock_up"))
	require.Positive(t, m.value("webhookd_ledger_append_lock_held_seconds"))
	require.Equal(t, 1.0, m.value("webhookd_ledger_append_lock_waiting"))
	require.Equal(t, 2, usersCount(t, db), "nothing behind the open transaction is visible")

	require.NoError(t, holder.Commit(ctx))
	require.Equal(t, http.StatusOK, <-delivered)
	require.Eventually(t, func() bool { return usersCount(t, db) == 4 }, 10*time.Second, 10*time.Millisecond)
	var held, waiting int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE clerk_id = 'user_held'), count(*) FILTER (WHERE clerk_id = 'user_waiting') FROM users`).Scan(&held, &waiting))
	require.Equal(t, []int{1, 1}, []int{held, waiting})
	h.waitCheckpoint(4)
	requireGaplessIndex(t, db, 4)
	require.Eventually(t, func() bool { return h.get("/readyz").status == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
	m = scrape(t, h)
	require.Zero(t, m.value("webhookd_ledger_append_lock_held_seconds"))
	require.Zero(t, m.value("webhookd_ledger_append_lock_waiting"))
}
