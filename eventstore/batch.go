package eventstore

import (
	"context"
	"slices"
	"strings"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/webhookd/webhookd/domain"
)

// Group commit. Appends that arrive while earlier ones are being written
// wait in a queue; a writer takes everything queued (up to MaxBatch) and
// publishes it as one multi-row INSERT, one transaction, one WAL flush.
// Nobody waits for a batch to fill: an append that finds a writer idle is
// written at once, alone. Under load the batches grow by themselves, which
// is what lets webhookd go past the database's single-row insert rate.
//
// The guarantees of a single append are kept per entry:
//   - Append returns only after the INSERT carrying its entry committed;
//   - one row per svix-id: the INSERT skips rows whose svix-id is already
//     in the ledger (ON CONFLICT (svix_id) DO NOTHING, which waits for a
//     concurrent uncommitted insert of the same id, in this process or
//     another, and skips only if that one commits), and after the commit
//     the batch reads back which uuids hold its svix-ids: an entry whose
//     own message uuid is there was appended, any other is a duplicate
//     (skipped when the INSERT's row count says every row went in); a
//     duplicate whose body differs from the stored one is recorded in
//     ledger_conflicts (conflict.go);
//   - a batch that fails for a reason other than the database being
//     unavailable is retried entry by entry, so one bad entry cannot fail
//     the others.

// Defaults of Config.
const (
	DefaultMaxBatch = 64
	DefaultWriters  = 2
)

// errStoreClosed is the answer to an append after Close.
var errStoreClosed = &domain.Error{Code: domain.EUNAVAILABLE, Reason: "shutting_down", Message: "webhookd is shutting down; retry later"}

// defaultFlushTimeout bounds a batch whose appends carry no deadline.
const defaultFlushTimeout = 30 * time.Second

type appendRequest struct {
	ctx    context.Context
	entry  domain.LedgerEntry
	msg    *message.Message
	result chan appendResult
}

type appendResult struct {
	res domain.AppendResult
	err error
}

func (r *appendRequest) reply(res domain.AppendResult, err error) {
	r.result <- appendResult{res, err}
}

// Append stores e durably (the insert has committed when Append returns
// nil). If e.SvixID is already in the ledger, including when another append
// of the same id is racing this one, it stores nothing and reports
// Duplicate. Concurrent appends share transactions (see Config.MaxBatch).
func (s *Store) Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error) {
	req := &appendRequest{ctx: ctx, entry: e, msg: NewMessage(e), result: make(chan appendResult, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return domain.AppendResult{}, errStoreClosed
	}
	select {
	case s.queue <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return domain.AppendResult{}, translate(ctx.Err(), "append to ledger")
	}
	select {
	case r := <-req.result:
		return r.res, r.err
	case <-ctx.Done():
		// The entry may still be committed by its batch; the caller
		// answers "retry later" and a retry finds it as a duplicate.
		return domain.AppendResult{}, translate(ctx.Err(), "append to ledger")
	}
}

// write is one writer: it takes the first queued append, everything else
// queued behind it up to MaxBatch, and flushes them together.
func (s *Store) write() {
	defer s.writers.Done()
	batch := make([]*appendRequest, 0, s.cfg.MaxBatch)
	for first := range s.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.flush(batch)
	}
}

// flush appends batch in one INSERT and answers every request in it.
func (s *Store) flush(batch []*appendRequest) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply(domain.AppendResult{}, translate(err, "append to ledger"))
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	// In svix-id order: two processes inserting the same new ids in
	// opposite orders would each wait for the other's row (a deadlock that
	// PostgreSQL breaks by failing one batch, answered 503).
	slices.SortStableFunc(live, func(a, b *appendRequest) int { return strings.Compare(a.entry.SvixID, b.entry.SvixID) })
	ctx, cancel := flushContext(live)
	defer cancel()
	start := time.Now()
	inserted := int64(-1)
	err := s.insert(context.WithValue(ctx, insertedKey{}, &inserted), live)
	if s.cfg.Flushed != nil {
		s.cfg.Flushed(len(live), time.Since(start), err)
	}
	if err != nil && len(live) > 1 && !IsUnavailable(err) {
		// Something in the batch was refused: try each entry alone so
		// only the one at fault fails.
		for _, r := range live {
			s.flush([]*appendRequest{r})
		}
		return
	}
	if err != nil {
		for _, r := range live {
			r.reply(domain.AppendResult{}, translate(err, "append to ledger"))
		}
		return
	}
	if inserted == int64(len(live)) {
		// Every row went in: all the appends are new.
		for _, r := range live {
			r.reply(domain.AppendResult{}, nil)
		}
		return
	}
	ids := make([]string, len(live))
	for i, r := range live {
		ids[i] = r.entry.SvixID
	}
	owners, err := s.owners(ctx, ids)
	for _, r := range live {
		switch {
		case err != nil:
			// Committed, but which entries were new is unknown: the
			// caller retries and then learns it is a duplicate.
			r.reply(domain.AppendResult{}, translate(err, "read back appended entries"))
		default:
			owner, found := owners[r.entry.SvixID]
			if found && owner.uuid == r.msg.UUID {
				r.reply(domain.AppendResult{}, nil)
				continue
			}
			if found {
				// A duplicate: if its body differs from the stored one,
				// it is kept in ledger_conflicts (conflict.go).
				if cerr := s.checkConflict(ctx, r.entry, owner.sha256); cerr != nil {
					r.reply(domain.AppendResult{}, cerr)
					continue
				}
			}
			r.reply(domain.AppendResult{Duplicate: true}, nil)
		}
	}
}

// insert publishes the batch's messages as one INSERT (autocommit).
func (s *Store) insert(ctx context.Context, batch []*appendRequest) error {
	msgs := make([]*message.Message, len(batch))
	for i, r := range batch {
		msgs[i] = r.msg
	}
	// watermill-sql runs the INSERT on the first message's context.
	msgs[0].SetContext(ctx)
	return s.publisher.Publish(Topic, msgs...)
}

// insertedKey carries, in the context of a batch's INSERT, where
// countingExecutor puts the number of rows it inserted.
type insertedKey struct{}

// countingExecutor is what the Watermill publisher executes its INSERT on:
// the pool, reporting the INSERT's row count to the batch (Publish itself
// returns only an error). When it equals the batch size, every append is
// new and the read-back is skipped.
type countingExecutor struct{ wsql.ContextExecutor }

// ExecContext implements wsql.ContextExecutor.
func (c countingExecutor) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	res, err := c.ContextExecutor.ExecContext(ctx, query, args...)
	if err == nil {
		if p, ok := ctx.Value(insertedKey{}).(*int64); ok {
			if n, nerr := res.RowsAffected(); nerr == nil {
				*p = n
			}
		}
	}
	return res, err
}

// owner is the stored entry that holds a svix-id: its message uuid and the
// SHA-256 of its payload.
type owner struct {
	uuid   string
	sha256 []byte
}

// owners returns, by svix-id, the stored entries that hold the given
// svix-ids.
func (s *Store) owners(ctx context.Context, svixIDs []string) (map[string]owner, error) {
	rows, err := s.pool.Query(ctx, `SELECT svix_id, uuid, sha256(payload) FROM `+EventsTable+` WHERE svix_id = ANY($1)`, svixIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	owners := make(map[string]owner, len(svixIDs))
	for rows.Next() {
		var id string
		var o owner
		if err := rows.Scan(&id, &o.uuid, &o.sha256); err != nil {
			return nil, err
		}
		owners[id] = o
	}
	return owners, rows.Err()
}

// flushContext lives as long as the longest-waiting request is willing to:
// a batch must not fail because one of its requests has a short deadline.
func flushContext(batch []*appendRequest) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.IsZero() {
		return context.WithTimeout(context.Background(), defaultFlushTimeout)
	}
	return context.WithDeadline(context.Background(), latest)
}

// Close stops accepting appends, writes those already queued and waits for
// them.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	s.writers.Wait()
	return s.publisher.Close()
}
