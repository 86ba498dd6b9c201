package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// batchCounting is the users projection, batched, that also counts in
// the applied table how often each entry took effect. Entries listed in
// refuse make any ApplyBatch holding them fail the way a database refusal
// does, and fail alone too; pauseAt stops Prepare once, at that entry,
// until released.
type batchCounting struct {
	refuse map[string]bool

	mu      sync.Mutex
	batches []int // sizes of the ApplyBatch calls that succeeded
	alone   map[string]int

	pauseAt  string
	inside   chan struct{}
	release  chan struct{}
	pauseOne sync.Once
}

type countedEntry struct {
	svixID string
	user   any
}

func (c *batchCounting) Name() string { return "counting" }

func (c *batchCounting) Prepare(e domain.LedgerEntry) (any, bool, error) {
	if c.pauseAt != "" && e.SvixID == c.pauseAt {
		c.pauseOne.Do(func() {
			close(c.inside)
			<-c.release
		})
	}
	user, ok, err := projections.Users.Prepare(e)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		user = nil
	}
	return countedEntry{e.SvixID, user}, true, nil
}

func (c *batchCounting) ApplyBatch(ctx context.Context, tx pgx.Tx, prepared []any) error {
	ids := make([]string, len(prepared))
	var users []any
	for i, p := range prepared {
		ce := p.(countedEntry)
		ids[i] = ce.svixID
		if ce.user != nil {
			users = append(users, ce.user)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO applied (svix_id, n) SELECT unnest($1::text[]), 1 ON CONFLICT (svix_id) DO UPDATE SET n = applied.n + 1`, ids); err != nil {
		return err
	}
	if err := projections.Users.ApplyBatch(ctx, tx, users); err != nil {
		return err
	}
	for _, id := range ids {
		if c.refuse[id] {
			_, err := tx.Exec(ctx, `SELECT 1/0`) // a real statement error: the transaction is aborted
			return err
		}
	}
	c.mu.Lock()
	c.batches = append(c.batches, len(prepared))
	c.mu.Unlock()
	return nil
}

func (c *batchCounting) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	p, _, err := c.Prepare(e)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.alone[e.SvixID]++
	c.mu.Unlock()
	return c.ApplyBatch(ctx, tx, []any{p})
}

func newBatchCounting() *batchCounting {
	return &batchCounting{refuse: map[string]bool{}, alone: map[string]int{}}
}

func TestBatchedProjectionAppliesABatchAtOnce(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	const users = 10
	for u := range users {
		for _, e := range history(fmt.Sprintf("user_batch%d", u)) {
			v.append(e)
		}
	}
	c := newBatchCounting()
	v.run(projections.RunnerConfig{Projections: []projections.Projection{c}})()

	counts := v.appliedCounts()
	require.Len(t, counts, users*4)
	for id, n := range counts {
		require.Equal(t, 1, n, id)
	}
	// All 40 were committed before the runner started: one batch, one call.
	require.Equal(t, []int{users * 4}, c.batches, "entries are applied with one call per batch, not one each")
	require.Empty(t, c.alone)
	for u := range users {
		v.requireWholeHistory(fmt.Sprintf("user_batch%d", u))
	}
}

// A batch the database refuses is rolled back whole and its entries are
// applied one by one: the bad one is retried, recorded and skipped, the
// others take effect once, in order.
func TestRefusedBatchIsAppliedEntryByEntry(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_refused") {
		v.append(e)
	}
	c := newBatchCounting()
	c.refuse["msg_2"] = true
	v.run(projections.RunnerConfig{Projections: []projections.Projection{c}, RetryInterval: time.Millisecond, MaxAttempts: 3})()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_3": 1, "msg_4": 1}, v.appliedCounts(), "the refused entry left no write; the others took effect once")
	require.Equal(t, map[string]int{"msg_1": 1, "msg_2": 3, "msg_3": 1, "msg_4": 1}, c.alone)
	var svixID, cause string
	var attempts int
	require.NoError(t, v.db.Pool.QueryRow(context.Background(),
		`SELECT svix_id, error, attempts FROM projection_failures WHERE projection = 'counting'`).Scan(&svixID, &cause, &attempts))
	require.Equal(t, "msg_2", svixID)
	require.Equal(t, "ERROR: division by zero (SQLSTATE 22012)", cause)
	require.Equal(t, 3, attempts)
	u := v.users()["user_refused"]
	require.Equal(t, "Hedy", *u.FirstName, "msg_3 applied over msg_1 without msg_2")
	require.NotNil(t, u.DeletedAt)
}

// The users projection itself, with the database refusing one user's rows
// (a trigger): the other users' entries in the same batches take effect.
func TestUsersBatchWithARefusedRow(t *testing.T) {
	t.Parallel()
	v := setup(t)
	ctx := context.Background()
	_, err := v.db.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_user() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'user refused by the test'; END $$;
		CREATE TRIGGER refuse_user BEFORE INSERT OR UPDATE ON users
			FOR EACH ROW WHEN (NEW.clerk_id = 'user_bad') EXECUTE FUNCTION refuse_user();`)
	require.NoError(t, err)
	good, bad := history("user_good"), history("user_bad")
	for i := range good {
		v.append(good[i])
		v.append(bad[i])
	}
	v.run(projections.RunnerConfig{RetryInterval: time.Millisecond, MaxAttempts: 2})()

	users := v.users()
	require.Contains(t, users, "user_good")
	require.NotContains(t, users, "user_bad")
	require.Equal(t, "Hedy", *users["user_good"].FirstName)
	require.NotNil(t, users["user_good"].DeletedAt)
	var failures int
	require.NoError(t, v.db.Pool.QueryRow(ctx, `SELECT count(*) FROM projection_failures WHERE projection = 'users' AND error LIKE '%user refused by the test%'`).Scan(&failures))
	require.Equal(t, 4, failures, "each of user_bad's entries recorded")
}

func TestTwoBatchedRunnersApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	c1, c2 := newBatchCounting(), newBatchCounting()
	c1.refuse["msg_7"], c2.refuse["msg_7"] = true, true // a refused batch on either side
	counts := v.twoRunners(c1, c2, projections.RunnerConfig{RetryInterval: time.Millisecond, MaxAttempts: 2})
	require.Len(t, counts, twoRunnersUsers*4-1, "every entry but the refused one")
}

func TestBatchedProjectionRecoversWhenTheDatabaseDropsMidBatch(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_outage") {
		v.append(e)
	}
	proxy, viaProxy := testdb.NewProxy(t, v.db)
	c := newBatchCounting()
	c.pauseAt, c.inside, c.release = "msg_3", make(chan struct{}), make(chan struct{})
	wait := v.run(projections.RunnerConfig{Pool: testdb.Pool(t, viaProxy), Projections: []projections.Projection{c}, RetryInterval: 20 * time.Millisecond})

	// msg_1 and msg_2 are prepared and held by the batch, msg_3 is in
	// hand; the batch meets the dead connection at its ack.
	outage(proxy, c.inside, c.release)
	wait()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_2": 1, "msg_3": 1, "msg_4": 1}, v.appliedCounts(), "each entry took effect once")
	require.Empty(t, c.alone, "an outage does not split batches")
	v.requireWholeHistory("user_outage")
}
