package loadgen

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// visibilityPoll is how often the watcher looks at the users table.
const visibilityPoll = 2 * time.Millisecond

// watcher measures projection lag: the time from an event's 2xx until the
// users table shows it (clerk_updated_at at or past the event's updated_at,
// or deleted_at set for a delete). One connection polls every 2 ms for the
// watched events (every sample-th) not yet visible.
type watcher struct {
	conn   *pgx.Conn
	events []Event
	sample int

	mu      sync.Mutex
	pending map[int]time.Time
	lags    []time.Duration
}

func newWatcher(conn *pgx.Conn, events []Event, sample int) *watcher {
	return &watcher{conn: conn, events: events, sample: max(1, sample), pending: map[int]time.Time{}}
}

// accepted records that event i was answered 2xx at at.
func (w *watcher) accepted(i int, at time.Time) {
	if i%w.sample != 0 {
		return
	}
	w.mu.Lock()
	w.pending[i] = at
	w.mu.Unlock()
}

type userRow struct {
	updatedAt *time.Time
	deletedAt *time.Time
}

// run polls until ctx ends or, once loadDone is closed, nothing is pending.
func (w *watcher) run(ctx context.Context, loadDone <-chan struct{}) error {
	ticker := time.NewTicker(visibilityPoll)
	defer ticker.Stop()
	for {
		w.mu.Lock()
		pending := make(map[int]time.Time, len(w.pending))
		for i, at := range w.pending {
			pending[i] = at
		}
		w.mu.Unlock()
		if len(pending) == 0 {
			select {
			case <-loadDone:
				return nil
			default:
			}
		} else if err := w.check(ctx, pending); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func (w *watcher) check(ctx context.Context, pending map[int]time.Time) error {
	seen := map[string]bool{}
	ids := make([]string, 0, len(pending))
	for i := range pending {
		if id := w.events[i].UserID; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	rows, err := w.conn.Query(ctx, `SELECT clerk_id, clerk_updated_at, deleted_at FROM users WHERE clerk_id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	state := map[string]userRow{}
	for rows.Next() {
		var id string
		var r userRow
		if err := rows.Scan(&id, &r.updatedAt, &r.deletedAt); err != nil {
			rows.Close()
			return err
		}
		state[id] = r
	}
	if err := rows.Err(); err != nil {
		return err
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, at := range pending {
		e := w.events[i]
		r, ok := state[e.UserID]
		if !ok {
			continue
		}
		visible := (e.Deleted() && r.deletedAt != nil) ||
			(!e.Deleted() && r.updatedAt != nil && !r.updatedAt.Before(e.UpdatedAt))
		if visible {
			w.lags = append(w.lags, now.Sub(at))
			delete(w.pending, i)
		}
	}
	return nil
}

// result returns the lags measured and how many events never became
// visible.
func (w *watcher) result() ([]time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lags, len(w.pending)
}
