package eventstore

import (
	"context"
	"strconv"
	"time"
)

// Reading in order.
//
// Every ordered reader of the ledger (the projections' poll loops and
// rebuilds through ScanAfter, the sealer, seal and projection lag) follows one rule:
// entries are read in (transaction_id, offset) order, and a reader at
// position (tx, off) reads the committed rows with (transaction_id,
// offset) > (tx, off). AfterPosition and SafeOrder are that rule.
//
// It is safe because appends commit in that order (migration 004): every
// INSERT into ledger_events takes a transaction-level advisory lock of the
// table (appendLockKey) before any row is computed and holds it to commit,
// the row trigger assigns transaction_id and offset under it, and an
// appending transaction whose id is lower than one that appended before it
// is refused. So a transaction that commits after a reader's query has a
// higher transaction_id than every row the reader saw: nothing can appear
// behind a reader's position. Readers wait only for a transaction that
// holds the append lock (AppendLockState shows it), not, as with the
// transaction-id horizon (pg_snapshot_xmin) used before, for the oldest
// transaction of the whole PostgreSQL server.

// SafeOrder is the ORDER BY list of every ordered ledger read.
const SafeOrder = `transaction_id, "offset"`

// AfterPosition is the condition "after position (tx, off)" of every
// ordered ledger read, tx an xid8 and off a bigint SQL expression. As a
// row comparison it is a range scan of the primary key (see ScanAfter).
func AfterPosition(tx, off string) string {
	return `(transaction_id, "offset") > (` + tx + `, ` + off + `)`
}

// appendLockKey is the first half of the ledger's append lock,
// pg_advisory_xact_lock(appendLockKey, <ledger_events oid>), taken by the
// ledger_events_append_lock trigger (migrations/sql/004).
const appendLockKey = 2003331429

// AppendLock is the state of the ledger's append lock.
type AppendLock struct {
	// Holder is the transaction holding it, nil when it is free.
	Holder *LockHolder
	// Waiting is how many transactions wait for it (appends).
	Waiting int
}

// LockHolder is a transaction holding the append lock.
type LockHolder struct {
	// PID is the holder's backend process id (pg_stat_activity.pid).
	PID int32
	// State is pg_stat_activity.state: "active", "idle in transaction", …
	// Empty when this role may not see other roles' sessions
	// (pg_read_all_stats).
	State string
	// Age is how long the holder's transaction has been open (0 when it
	// cannot be seen, as State).
	Age time.Duration
}

// AppendLockState reads who holds and who waits for the ledger's append
// lock (pg_locks and pg_stat_activity; a scrape-time read). Appends hold
// it for one INSERT and its commit; a transaction that holds it for long
// (one that appended and stays open) stops every append and every reader.
func (s *Store) AppendLockState(ctx context.Context) (AppendLock, error) {
	rows, err := s.pool.Query(ctx, `
	SELECT l.granted, l.pid, coalesce(a.state, ''),
	       coalesce(extract(epoch FROM clock_timestamp() - a.xact_start), 0)::float8
	FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory'
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid = `+strconv.Itoa(appendLockKey)+`::oid
	  AND l.objid = '`+EventsTable+`'::regclass::oid
	  AND l.objsubid = 2`)
	if err != nil {
		return AppendLock{}, translate(err, "read the ledger's append lock")
	}
	defer rows.Close()
	var out AppendLock
	for rows.Next() {
		var (
			granted bool
			h       LockHolder
			age     float64
		)
		if err := rows.Scan(&granted, &h.PID, &h.State, &age); err != nil {
			return AppendLock{}, translate(err, "read the ledger's append lock")
		}
		if !granted {
			out.Waiting++
			continue
		}
		h.Age = time.Duration(age * float64(time.Second))
		out.Holder = &h
	}
	return out, translate(rows.Err(), "read the ledger's append lock")
}
