package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// How a Batched projection's entries reach the database. watermill-sql's
// subscriber reads a batch of ledger rows in one transaction, hands the
// messages to the handler one at a time, and then stores the consumer
// position with one statement (the ack) and commits. The handler of a
// Batched projection only prepares each entry and keeps it with the
// transaction (batchTx); the transaction applies what it holds with one
// ApplyBatch just before it runs the ack. So the writes and the position
// still commit together, and a batch of a hundred entries costs a few
// statements instead of a hundred round trips.
//
// batchTx relies on the ack being the only statement the subscriber
// executes on its transaction with ExecContext: with the PostgreSQL
// offsets adapter there is no per-message "consumed" query (the
// projection tests would catch a change: nothing would be applied).

// pendingEntry is an entry prepared by a Batched projection, waiting for
// the batch's ack.
type pendingEntry struct {
	entry    domain.LedgerEntry
	prepared any
}

// batchBeginner begins the subscriber's transactions as batchTx.
type batchBeginner struct {
	wsql.Beginner
	acks  *ackTracker
	apply func(ctx context.Context, tx pgx.Tx, entries []pendingEntry) error
}

// BeginTx implements wsql.Beginner.
func (b batchBeginner) BeginTx(ctx context.Context, opts *sql.TxOptions) (wsql.Tx, error) {
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	ptx, ok := tx.(*wsql.PgxTx)
	if !ok {
		_ = tx.Rollback()
		return nil, fmt.Errorf("projection: subscriber transaction is %T, want *sql.PgxTx", tx)
	}
	return &batchTx{PgxTx: ptx, acks: b.acks, apply: b.apply}, nil
}

// batchTx is a subscriber transaction that holds the prepared entries of
// its batch until the ack.
type batchTx struct {
	*wsql.PgxTx
	acks  *ackTracker
	apply func(ctx context.Context, tx pgx.Tx, entries []pendingEntry) error

	mu      sync.Mutex
	pending []pendingEntry
	// failed is set once applying pending entries failed: the
	// transaction can only be rolled back, and the ack fails with it.
	failed error
}

func (t *batchTx) add(e domain.LedgerEntry, prepared any) {
	t.mu.Lock()
	t.pending = append(t.pending, pendingEntry{e, prepared})
	t.mu.Unlock()
}

// doomed reports whether the transaction can no longer commit.
func (t *batchTx) doomed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed != nil
}

// applyPending applies the pending entries. At the ack it applies those
// up to and including the last acked row: entries after it were prepared
// while the subscriber was giving up on them (it is closing), are not
// part of the acked batch and are read again later. Before an entry that
// must be applied alone (atAck false) it applies them all, so entries
// still take effect in ledger order.
func (t *batchTx) applyPending(ctx context.Context, atAck bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed != nil {
		return t.failed
	}
	n := len(t.pending)
	if atAck {
		last := t.acks.last.Load()
		for i, p := range t.pending {
			if p.entry.Offset == last {
				n = i + 1
				break
			}
		}
	}
	entries := t.pending[:n]
	t.pending = nil
	if len(entries) == 0 {
		return nil
	}
	if err := t.apply(ctx, t.Tx, entries); err != nil {
		t.failed = err
		return err
	}
	return nil
}

// ExecContext runs the subscriber's ack after applying the pending
// entries; a failure to apply them fails the ack, and the subscriber rolls
// the whole batch back.
func (t *batchTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	if err := t.applyPending(ctx, true); err != nil {
		return nil, err
	}
	return t.PgxTx.ExecContext(ctx, query, args...)
}

// ackTracker remembers the last row of the batch being acked.
type ackTracker struct {
	wsql.OffsetsAdapter
	last atomic.Int64
}

// AckMessageQuery implements wsql.OffsetsAdapter.
func (a *ackTracker) AckMessageQuery(params wsql.AckMessageQueryParams) (wsql.Query, error) {
	a.last.Store(params.LastRow.Offset)
	return a.OffsetsAdapter.AckMessageQuery(params)
}

// applier applies prepared entries of p with one ApplyBatch.
func (r *Runner) applier(p Batched) func(ctx context.Context, tx pgx.Tx, entries []pendingEntry) error {
	return func(ctx context.Context, tx pgx.Tx, entries []pendingEntry) error {
		prepared := make([]any, len(entries))
		for i, pe := range entries {
			prepared[i] = pe.prepared
		}
		start := time.Now()
		err := p.ApplyBatch(ctx, tx, prepared)
		first, last := entries[0].entry.Offset, entries[len(entries)-1].entry.Offset
		if err == nil {
			for _, pe := range entries {
				if r.cfg.Applied != nil {
					r.cfg.Applied(p.Name(), pe.entry)
				}
			}
			r.cfg.Logger.Debug("projection_batch_applied", slog.String("projection", p.Name()),
				slog.Int("entries", len(entries)), slog.Int64("first_offset", first), slog.Int64("last_offset", last),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
			return nil
		}
		outcome := FailureUnavailable
		if !eventstore.IsUnavailable(err) {
			// Something in the batch is refused: apply these entries one
			// by one next time, so that only the bad one fails.
			outcome = FailureRetry
			r.oneByOne(p.Name(), entries)
		}
		for _, pe := range entries {
			r.failed(p.Name(), pe.entry, outcome)
		}
		r.cfg.Logger.Warn("projection_batch_failed", slog.String("projection", p.Name()),
			slog.Int("entries", len(entries)), slog.Int64("first_offset", first), slog.Int64("last_offset", last),
			slog.String("next", map[string]string{
				FailureUnavailable: "the batch is rolled back and read again",
				FailureRetry:       "the batch is rolled back and its entries applied one by one",
			}[outcome]),
			slog.String("cause", audit.SafeError(err)))
		return fmt.Errorf("projection %s: apply batch: %w", p.Name(), err)
	}
}

// oneByOne marks entries to be applied alone, each in its own savepoint,
// the next time they are read.
func (r *Runner) oneByOne(projection string, entries []pendingEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pe := range entries {
		r.alone[attemptKey(projection, pe.entry.Offset)] = true
	}
}

// isAlone reports whether e is to be applied alone (until forget).
func (r *Runner) isAlone(projection string, offset int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alone[attemptKey(projection, offset)]
}
