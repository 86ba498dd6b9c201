package projections_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// pausing counts applications like counting, and stops once inside the
// transaction of one entry until released.
type pausing struct {
	counting
	at       string
	inside   chan struct{}
	release  chan struct{}
	pauseOne sync.Once
}

func (p *pausing) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	if e.SvixID == p.at {
		p.pauseOne.Do(func() {
			close(p.inside)
			<-p.release
		})
	}
	return p.counting.Apply(ctx, tx, e)
}

func TestProjectionRecoversWhenTheDatabaseDropsMidBatch(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_outage") {
		v.append(e)
	}
	proxy, viaProxy := testdb.NewProxy(t, v.db)
	p := &pausing{counting: counting{tried: map[string]int{}}, at: "msg_2", inside: make(chan struct{}), release: make(chan struct{})}
	wait := v.run(projections.RunnerConfig{Pool: testdb.Pool(t, viaProxy), Projections: []projections.Projection{p}, RetryInterval: 20 * time.Millisecond})

	// msg_1 is applied in this batch's transaction, msg_2 is in hand.
	outage(proxy, p.inside, p.release)
	wait()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_2": 1, "msg_3": 1, "msg_4": 1}, v.appliedCounts(), "each entry took effect once")
	v.requireWholeHistory("user_outage")
}

// outage waits until a projection is paused inside a batch, cuts the
// database, lets the projection go on against the dead connection, and
// restores the database 200 ms later.
func outage(proxy *testdb.Proxy, inside <-chan struct{}, release chan struct{}) {
	<-inside
	proxy.Cut()
	close(release)
	time.Sleep(200 * time.Millisecond)
	proxy.Restore()
}

// A row committed by someone else while a batch is in hand (a rebuild's
// catch-up does exactly that) must not stall the projection: the batch's
// writes see it.
func TestProjectionSeesRowsCommittedDuringItsBatch(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_concurrent")[:2] {
		v.append(e)
	}
	p := &pausing{counting: counting{tried: map[string]int{}}, at: "msg_1", inside: make(chan struct{}), release: make(chan struct{})}
	wait := v.run(projections.RunnerConfig{Projections: []projections.Projection{p}, RetryInterval: 20 * time.Millisecond})

	<-p.inside // the batch transaction has read its entries, written nothing yet
	_, err := v.db.Pool.Exec(context.Background(), `INSERT INTO users (clerk_id, role, last_offset) VALUES ('user_concurrent', 'ADMIN', 0)
		ON CONFLICT (clerk_id) DO UPDATE SET role = 'ADMIN'`)
	require.NoError(t, err)
	close(p.release)
	wait()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_2": 1}, v.appliedCounts())
	u := v.users()["user_concurrent"]
	require.Equal(t, "Grace", *u.FirstName)
	require.Equal(t, "ADMIN", u.Role)
}
