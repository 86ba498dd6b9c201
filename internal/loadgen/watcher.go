package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/projections"
)

// positionPoll is how often the watcher reads the users projection's
// position: the resolution of the projection lag measured. 2 ms is fine
// against a 250 ms target, and each read costs the machine being
// measured (at 1 ms, about 12 µs of CPU per event at 3,500 events/s).
const positionPoll = 2 * time.Millisecond

// position is a place in the ledger's consumption order: ledger rows are
// read by (transaction_id, "offset"), and a consumer's position is the
// last row it processed.
type position struct {
	txID   int64
	offset int64
}

func (p position) compare(q position) int {
	if c := cmp.Compare(p.txID, q.txID); c != 0 {
		return c
	}
	return cmp.Compare(p.offset, q.offset)
}

// observation is a position the watcher saw and when the answer arrived.
type observation struct {
	at  time.Time
	pos position
}

// positionWatcher measures projection lag, the time from an event's 2xx
// until the users table shows it, by following the users projection's
// committed position instead of looking at the users table.
//
// The position is equivalent to row visibility: the projection's
// poll loop writes a batch's users rows and its ledger_offsets
// row (offset_acked, last_processed_transaction_id) in one transaction, so
// the event's users row is visible exactly when the committed position is
// at or past the event's (transaction_id, "offset"). Appends commit in
// that order (eventstore's order.go), so no row below the position can
// still appear, and positions only grow. (A poison event
// the projection skips moves the position without changing users; the
// users check after the run catches that.)
//
// It replaced a watcher that polled `SELECT … FROM users WHERE clerk_id =
// ANY($1)` every 2 ms for the pending events: on a 2-core machine that
// query's PostgreSQL backend took about 51% of a core, more than any other
// backend, so the observer took the CPU webhookd and PostgreSQL needed and
// distorted both the throughput and the lag it measured, while watching
// only 1 event in 10. Reading one primary-key row every millisecond took
// about 5% of a core (80 ms of CPU over a 1.6 s, 3000-event run), and a
// timeline of position changes times every event.
//
// Times are taken when the answer arrives, so a lag is at most one poll
// interval plus one round trip late, never early. Both ends of a lag come
// from this process's monotonic clock.
type positionWatcher struct {
	conn  *pgx.Conn
	group string
	// acceptedAt is event index → time of its 2xx (zero: not accepted).
	// Each index is written by the one sender that posted it and read
	// after the load.
	acceptedAt []time.Time
	// timeline holds the position changes, in order; run owns it until it
	// returns.
	timeline []observation
}

func newPositionWatcher(conn *pgx.Conn, events int) *positionWatcher {
	return &positionWatcher{
		conn:       conn,
		group:      projections.ConsumerGroup(projections.Users.Name()),
		acceptedAt: make([]time.Time, events),
	}
}

// accepted records that event i was answered 2xx at at.
func (w *positionWatcher) accepted(i int, at time.Time) { w.acceptedAt[i] = at }

// run polls the position every positionPoll until ctx ends or, once
// loadDone is closed, the position reaches the ledger's last row then
// (reached true) or timeout has passed since (reached false).
func (w *positionWatcher) run(ctx context.Context, loadDone <-chan struct{}, timeout time.Duration) (reached bool, err error) {
	ticker := time.NewTicker(positionPoll)
	defer ticker.Stop()
	var (
		target   *position
		deadline time.Time
	)
	for {
		pos, err := w.read(ctx)
		if err != nil {
			return false, err
		}
		at := time.Now()
		if n := len(w.timeline); n == 0 || w.timeline[n-1].pos != pos {
			w.timeline = append(w.timeline, observation{at: at, pos: pos})
		}
		if target != nil {
			if pos.compare(*target) >= 0 {
				return true, nil
			}
			if at.After(deadline) {
				return false, nil
			}
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-loadDone:
			loadDone = nil
			last, err := w.lastLedgerRow(ctx)
			if err != nil {
				return false, err
			}
			target, deadline = &last, time.Now().Add(timeout)
		case <-ticker.C:
		}
	}
}

// read returns the projection's committed position. Before its subscriber
// first subscribes there is no row: nothing is visible yet.
func (w *positionWatcher) read(ctx context.Context) (position, error) {
	var p position
	err := w.conn.QueryRow(ctx, `SELECT coalesce(offset_acked, 0), last_processed_transaction_id::text::bigint
		FROM `+eventstore.OffsetsTable+` WHERE consumer_group = $1`, w.group).Scan(&p.offset, &p.txID)
	if errors.Is(err, pgx.ErrNoRows) {
		return position{}, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("read the %s position: %w", w.group, err)
	}
	return p, nil
}

// lastLedgerRow returns the position of the ledger's last row, or the zero
// position when the ledger is empty.
func (w *positionWatcher) lastLedgerRow(ctx context.Context) (position, error) {
	var p position
	err := w.conn.QueryRow(ctx, `SELECT transaction_id::text::bigint, "offset" FROM `+eventstore.EventsTable+`
		ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`).Scan(&p.txID, &p.offset)
	if errors.Is(err, pgx.ErrNoRows) {
		return position{}, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("read the ledger's last row: %w", err)
	}
	return p, nil
}

// ledgerPositions reads the whole ledger once and returns event index →
// ledger position for the events it holds (events carry their svix-id as
// MsgID). Run it after run, on the same connection.
func (w *positionWatcher) ledgerPositions(ctx context.Context, events []Event) (map[int]position, error) {
	index := make(map[string]int, len(events))
	for i, e := range events {
		index[e.MsgID] = i
	}
	rows, err := w.conn.Query(ctx, `SELECT svix_id, transaction_id::text::bigint, "offset" FROM `+eventstore.EventsTable)
	if err != nil {
		return nil, fmt.Errorf("read the ledger: %w", err)
	}
	defer rows.Close()
	positions := make(map[int]position, len(events))
	for rows.Next() {
		var (
			svixID string
			p      position
		)
		if err := rows.Scan(&svixID, &p.txID, &p.offset); err != nil {
			return nil, fmt.Errorf("read the ledger: %w", err)
		}
		if i, ok := index[svixID]; ok {
			positions[i] = p
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the ledger: %w", err)
	}
	return positions, nil
}

// firstSeen returns when the timeline (in position order) first reached p.
func firstSeen(timeline []observation, p position) (time.Time, bool) {
	k, _ := slices.BinarySearchFunc(timeline, p, func(o observation, p position) int { return o.pos.compare(p) })
	if k == len(timeline) {
		return time.Time{}, false
	}
	return timeline[k].at, true
}

// projectionLags returns the lag of every accepted event (acceptedAt not
// zero): from its 2xx to the first observation at or past its ledger
// position, or 0 when the projection had applied it before the client saw
// the 2xx. Accepted events missing from ledger, or never reached by the
// timeline, count in notVisible.
func projectionLags(timeline []observation, acceptedAt []time.Time, ledger map[int]position) (lags []time.Duration, notVisible int) {
	for i, at := range acceptedAt {
		if at.IsZero() {
			continue
		}
		p, ok := ledger[i]
		if !ok {
			notVisible++
			continue
		}
		seen, ok := firstSeen(timeline, p)
		if !ok {
			notVisible++
			continue
		}
		lags = append(lags, max(0, seen.Sub(at)))
	}
	return lags, notVisible
}
