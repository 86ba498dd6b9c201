package loadgen

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
)

func TestFirstSeenFindsTheFirstObservationAtOrPastAPosition(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	timeline := []observation{
		{at: t0, pos: position{}},
		{at: t0.Add(10 * time.Millisecond), pos: position{txID: 100, offset: 5}},
		{at: t0.Add(20 * time.Millisecond), pos: position{txID: 100, offset: 9}},
		{at: t0.Add(30 * time.Millisecond), pos: position{txID: 102, offset: 7}},
	}
	for _, tc := range []struct {
		pos  position
		want time.Duration
		ok   bool
	}{
		{position{txID: 99, offset: 50}, 10 * time.Millisecond, true},
		{position{txID: 100, offset: 5}, 10 * time.Millisecond, true}, // exactly at the position
		{position{txID: 100, offset: 6}, 20 * time.Millisecond, true}, // same transaction, later row
		{position{txID: 101, offset: 1}, 30 * time.Millisecond, true}, // later transaction, lower offset
		{position{txID: 102, offset: 3}, 30 * time.Millisecond, true}, // lower offset in the last transaction
		{position{txID: 102, offset: 8}, 0, false},                    // past the last observation
		{position{txID: 103, offset: 1}, 0, false},                    // a later transaction
	} {
		t.Run(fmt.Sprintf("%d/%d", tc.pos.txID, tc.pos.offset), func(t *testing.T) {
			at, ok := firstSeen(timeline, tc.pos)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, t0.Add(tc.want), at)
			}
		})
	}
	_, ok := firstSeen(nil, position{txID: 1, offset: 1})
	require.False(t, ok, "an empty timeline reaches nothing")
}

func TestProjectionLags(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	timeline := []observation{
		{at: at(0), pos: position{}},
		{at: at(40), pos: position{txID: 10, offset: 2}},
		{at: at(70), pos: position{txID: 11, offset: 3}},
	}
	acceptedAt := []time.Time{
		0: at(5),  // visible at 40: 35 ms
		1: at(50), // applied at 40, before the client saw its 2xx at 50: clamped to 0
		2: at(60), // visible at 70: 10 ms
		3: {},     // not accepted (non-2xx): no lag, not counted
		4: at(65), // past the last observation: not visible
		5: at(66), // accepted but not in the ledger: not visible
		6: {},     // in the ledger but not accepted (the answer was lost): ignored
		7: at(40), // the 2xx and the observation at the same instant: 0
		8: at(38), // same transaction as event 0, earlier row: 2 ms
	}
	ledger := map[int]position{
		0: {txID: 10, offset: 2},
		1: {txID: 9, offset: 1},
		2: {txID: 11, offset: 3},
		3: {txID: 10, offset: 1},
		4: {txID: 12, offset: 4},
		6: {txID: 10, offset: 5},
		7: {txID: 10, offset: 2},
		8: {txID: 10, offset: 1},
	}
	lags, notVisible := projectionLags(timeline, acceptedAt, ledger)
	require.Equal(t, []time.Duration{35 * time.Millisecond, 0, 10 * time.Millisecond, 0, 2 * time.Millisecond}, lags)
	require.Equal(t, 2, notVisible)
}

// TestPositionWatcher follows a hand-written ledger and consumer position:
// no offsets row yet, then the projection committing past some rows, then
// past the last one.
func TestPositionWatcher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })

	events := []Event{{MsgID: "msg_a"}, {MsgID: "msg_b"}, {MsgID: "msg_c"}, {MsgID: "msg_never_sent"}}
	// msg_a and msg_b in one transaction, msg_c in a later one, and a row
	// no event of the workload has.
	appendRows(t, db, "msg_a", "msg_b")
	appendRows(t, db, "msg_c", "whd_other")

	w := newPositionWatcher(conn, len(events))
	pos, err := w.read(ctx)
	require.NoError(t, err)
	require.Equal(t, position{}, pos, "no offsets row: nothing visible")

	ledger, err := w.ledgerPositions(ctx, events)
	require.NoError(t, err)
	require.Len(t, ledger, 3)
	a, b, c := ledger[0], ledger[1], ledger[2]
	require.Equal(t, a.txID, b.txID)
	require.Less(t, a.offset, b.offset)
	require.Less(t, b.txID, c.txID)
	last, err := w.lastLedgerRow(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, last.compare(c), "the row of whd_other comes after msg_c's")

	// The subscriber's first ack creates the row; offset_acked may be NULL
	// in watermill-sql's layout.
	_, err = db.Pool.Exec(ctx, `INSERT INTO ledger_offsets (consumer_group, offset_acked, last_processed_transaction_id) VALUES ('projection.users', NULL, $1::text::xid8)`, fmt.Sprint(a.txID))
	require.NoError(t, err)
	pos, err = w.read(ctx)
	require.NoError(t, err)
	require.Equal(t, position{txID: a.txID}, pos)

	// With the position short of the last row, run gives up at the
	// deadline.
	setPosition(t, db, b)
	done := make(chan struct{})
	close(done)
	reached, err := w.run(ctx, done, 0)
	require.NoError(t, err)
	require.False(t, reached)
	require.Equal(t, b, w.timeline[len(w.timeline)-1].pos)

	// Once the projection commits past the last row, run returns.
	w.timeline = nil
	loadDone := make(chan struct{})
	type result struct {
		reached bool
		err     error
	}
	ran := make(chan result, 1)
	go func() {
		reached, err := w.run(ctx, loadDone, time.Minute)
		ran <- result{reached, err}
	}()
	setPosition(t, db, c)
	close(loadDone)
	setPosition(t, db, last)
	r := <-ran
	require.NoError(t, r.err)
	require.True(t, r.reached)
	require.Equal(t, last, w.timeline[len(w.timeline)-1].pos)
	for k := 1; k < len(w.timeline); k++ {
		require.Equal(t, 1, w.timeline[k].pos.compare(w.timeline[k-1].pos), "the timeline records changes only, in order")
	}
}

// appendRows appends one ledger row per svix-id, all in one transaction.
func appendRows(t *testing.T, db *testdb.DB, svixIDs ...string) {
	t.Helper()
	tx, err := db.Pool.Begin(context.Background())
	require.NoError(t, err)
	for _, id := range svixIDs {
		_, err := tx.Exec(context.Background(), `INSERT INTO ledger_events
			(uuid, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, payload)
			VALUES (gen_random_uuid()::text, $1, 'webhookd', 'user.access_changed', 'user_1', 'ins_1', now(), 'ms', now(), '\x7b7d')`, id)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(context.Background()))
}

func setPosition(t *testing.T, db *testdb.DB, p position) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), `UPDATE ledger_offsets SET offset_acked = $1, last_processed_transaction_id = $2::text::xid8 WHERE consumer_group = 'projection.users'`,
		p.offset, fmt.Sprint(p.txID))
	require.NoError(t, err)
}
