package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Pool        *pgxpool.Pool
	Projections []Projection
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PollInterval is how often a caught-up projection looks for new
	// ledger entries (from the start of one batch to the start of the
	// next): the floor of projection lag. Defaults to 25ms.
	PollInterval time.Duration
	// BatchSize is how many entries one transaction applies. Defaults to 100.
	BatchSize int
	// MaxAttempts is how often an entry is tried before it is recorded in
	// projection_failures and skipped. Failures that mean the database is
	// unavailable do not count; an entry that can never apply (it does not
	// decode, or its origin does not verify) is skipped at its first
	// failure. Defaults to 5.
	MaxAttempts int
	// RetryInterval is the pause before an entry is tried again. Defaults
	// to 100ms.
	RetryInterval time.Duration
	// Applied, when set, is called after a batch committed, for each entry
	// the batch took (applied, or of a type the projection does not apply),
	// with the projection name and the entry (without its Payload when it
	// is of a type the projection does not apply: it was read without it).
	Applied func(projection string, e domain.LedgerEntry)
	// Failed, when set, is called each time applying an entry fails, with
	// the projection name, the entry and what happens next:
	// FailureRetry (the entry is tried again), FailureUnavailable (the
	// database is unavailable; retried without counting an attempt) or
	// FailureSkipped (recorded in projection_failures and skipped).
	Failed func(projection string, e domain.LedgerEntry, outcome string)
	// Batch, when set, is called after each batch transaction with the
	// projection name, the number of entries read, how long the batch took
	// (read, apply, commit) and whether it committed.
	Batch func(projection string, entries int, took time.Duration, committed bool)
}

// Outcomes passed to RunnerConfig.Failed.
const (
	FailureRetry       = "retry"
	FailureUnavailable = "unavailable"
	FailureSkipped     = "skipped"
)

// FailureOutcomes lists every outcome passed to RunnerConfig.Failed.
var FailureOutcomes = []string{FailureRetry, FailureUnavailable, FailureSkipped}

// Runner runs projections, each in a poll loop of its own over the
// ledger's positioned reads (eventstore.ScanAfter): one transaction per
// batch locks the projection's position (its ledger_offsets row, FOR
// UPDATE: a second webhookd process waits for it), reads the entries
// after it in safe order, applies them and stores the new position, so
// that the writes and the position commit together.
type Runner struct {
	cfg RunnerConfig

	running     chan struct{}
	runningOnce sync.Once

	mu       sync.Mutex
	attempts map[string]int  // projection/offset → failed attempts
	alone    map[string]bool // projection/offset → apply alone (see Batched)
}

// NewRunner prepares a Runner; Run starts it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Pool == nil {
		return nil, errors.New("projection runner: no database pool")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 25 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 100 * time.Millisecond
	}
	return &Runner{cfg: cfg, attempts: map[string]int{}, alone: map[string]bool{}, running: make(chan struct{})}, nil
}

// ConsumerGroup is the ledger_offsets row of a projection.
func ConsumerGroup(projection string) string { return "projection." + projection }

// Run runs the projections until ctx is done. A database outage stops no
// loop: a batch that fails for it is rolled back and read again after
// RetryInterval. Stopping rolls back the batch in hand (its entries are
// read again at the next start).
func (r *Runner) Run(ctx context.Context) error {
	// Each projection's position row exists before Running: a projection
	// that has not run yet measures its lag from the ledger's start.
	for {
		err := pgx.BeginFunc(ctx, r.cfg.Pool, func(tx pgx.Tx) error {
			for _, p := range r.cfg.Projections {
				if _, err := eventstore.ConsumerPosition(ctx, tx, ConsumerGroup(p.Name())); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		r.cfg.Logger.Warn("projections_restart", slog.String("cause", redact.SafeError(err)))
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
	r.runningOnce.Do(func() { close(r.running) })
	var wg sync.WaitGroup
	for _, p := range r.cfg.Projections {
		wg.Go(func() { r.loop(ctx, p) })
	}
	wg.Wait()
	return nil
}

// Running is closed once every projection runs.
func (r *Runner) Running() chan struct{} { return r.running }

func (r *Runner) loop(ctx context.Context, p Projection) {
	// The previous batch's room, read into again (see
	// eventstore.ScanAfterForTypes).
	var room []eventstore.Scanned
	for ctx.Err() == nil {
		start := time.Now()
		n, err := r.step(ctx, p, &room)
		if r.cfg.Batch != nil && (n > 0 || err != nil) && ctx.Err() == nil {
			r.cfg.Batch(p.Name(), n, time.Since(start), err == nil)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !errors.Is(err, errRetryEntry) {
				r.cfg.Logger.Warn("projection_retry", slog.String("projection", p.Name()), slog.String("cause", redact.SafeError(err)))
			}
			sleep(ctx, r.cfg.RetryInterval)
		case n < r.cfg.BatchSize:
			// Caught up: the next batch starts PollInterval after this
			// one started, not after it ended, so that a batch that
			// took long (the machine under load) does not add its own
			// time to the next entry's wait.
			if wait := r.cfg.PollInterval - time.Since(start); wait > 0 {
				sleep(ctx, wait)
			}
		}
	}
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errRetryEntry ends a batch early at an entry that failed and will be
// tried again (already logged as projection_failed).
var errRetryEntry = errors.New("an entry is to be tried again")

// step runs one batch of p and returns how many entries it read. The
// batch is read into *room, which it leaves holding the batch's array for
// the next step: nothing keeps a batch's entries past its step.
func (r *Runner) step(ctx context.Context, p Projection, room *[]eventstore.Scanned) (int, error) {
	tx, err := r.cfg.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	group := ConsumerGroup(p.Name())
	pos, err := eventstore.ConsumerPosition(ctx, tx, group)
	if err != nil {
		return 0, err
	}
	var (
		batch []eventstore.Scanned
		types []string // nil: every type
	)
	if typed, ok := p.(typedProjection); ok {
		// Entries of other types come without their payload: this
		// projection never decodes them.
		types = typed.EventTypes()
		batch, err = eventstore.ScanAfterForTypes(ctx, tx, *room, pos, r.cfg.BatchSize, types)
		if cap(batch) > 0 {
			*room = batch[:0]
		}
	} else {
		batch, err = eventstore.ScanAfter(ctx, tx, pos, eventstore.Position{}, r.cfg.BatchSize)
	}
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	done, skipped, stop := r.applyBatch(ctx, tx, p, batch, types)
	if done == 0 {
		return len(batch), stop
	}
	if err := eventstore.SetConsumerPosition(ctx, tx, group, batch[done-1].Position); err != nil {
		return len(batch), err
	}
	if err := tx.Commit(ctx); err != nil {
		return len(batch), err
	}
	debug := r.cfg.Logger.Enabled(ctx, slog.LevelDebug)
	for _, s := range batch[:done] {
		r.forget(p.Name(), s.Offset)
		if skipped[s.Offset] {
			continue
		}
		if r.cfg.Applied != nil {
			r.cfg.Applied(p.Name(), s.LedgerEntry)
		}
		if debug {
			r.cfg.Logger.Debug("projection_applied", slog.String("projection", p.Name()),
				slog.Int64("ledger_offset", s.Offset), slog.String("svix_id", s.SvixID),
				slog.String("event_type", s.EventType), slog.String("clerk_id", s.SubjectID))
		}
	}
	return len(batch), stop
}

// typedProjection is a projection that applies only the entries of the
// event types it lists (a ReadModel): the runner reads the others without
// their payload and passes over them without decoding.
type typedProjection interface {
	Projection
	EventTypes() []string
}

// pendingEntry is an entry prepared by a Batched projection, waiting for
// the batch's ApplyBatch.
type pendingEntry struct {
	entry    domain.LedgerEntry
	prepared any
}

// applyBatch applies batch in tx and returns how many of its entries are
// done (applied, skipped as not the projection's, or recorded as poison:
// those are in skipped): the position moves past those. stop is why it did not do them all; tx
// can only be rolled back when done is 0 and stop is not nil. With types
// set, entries of other types are passed over without a look (they were
// read without their payload).
//
// A Batched projection's entries are prepared one by one and applied with
// one ApplyBatch. An entry marked to be applied alone (after a batch
// holding it failed) is applied by itself in a savepoint, the entries
// prepared before it first, so that entries still take effect in ledger
// order; so is every entry of a projection that is not Batched.
func (r *Runner) applyBatch(ctx context.Context, tx pgx.Tx, p Projection, batch []eventstore.Scanned, types []string) (done int, skipped map[int64]bool, stop error) {
	bp, batched := p.(Batched)
	var pending []pendingEntry
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := r.applyPending(ctx, tx, bp, pending)
		pending = nil
		return err
	}
	for i, s := range batch {
		e := s.LedgerEntry
		if types != nil && !slices.Contains(types, e.EventType) {
			// Not this projection's (read without its payload).
			continue
		}
		if batched && !r.isAlone(p.Name(), e.Offset) {
			prepared, ok, err := bp.Prepare(e)
			if err == nil {
				if ok {
					pending = append(pending, pendingEntry{e, prepared})
				}
				continue
			}
			// The entry's own failure: handled alone, below.
		}
		if err := flush(); err != nil {
			return 0, nil, err
		}
		err := applyInSavepoint(ctx, tx, p, e)
		if err == nil {
			continue
		}
		if eventstore.IsUnavailable(err) {
			r.failed(p.Name(), e, FailureUnavailable)
			return 0, nil, err
		}
		attempts := r.fail(p.Name(), e.Offset)
		if attempts < r.cfg.MaxAttempts && !permanent(p, e, err) {
			r.failed(p.Name(), e, FailureRetry)
			r.cfg.Logger.Warn("projection_failed", slog.String("projection", p.Name()),
				slog.Int64("ledger_offset", e.Offset), slog.String("svix_id", e.SvixID),
				slog.String("event_type", e.EventType), slog.Int("attempt", attempts),
				slog.String("cause", redact.SafeError(err)))
			return i, skipped, errRetryEntry
		}
		// Poison: record it with the position and move on.
		if rerr := RecordFailure(ctx, tx, p.Name(), e, err, attempts, true); rerr != nil {
			return 0, nil, rerr
		}
		if skipped == nil {
			skipped = map[int64]bool{}
		}
		skipped[e.Offset] = true
		r.failed(p.Name(), e, FailureSkipped)
		r.cfg.Logger.Error("projection_skipped", slog.String("projection", p.Name()),
			slog.Int64("ledger_offset", e.Offset), slog.String("svix_id", e.SvixID),
			slog.String("event_type", e.EventType), slog.Int("attempts", attempts),
			slog.String("cause", redact.SafeError(err)))
	}
	if err := flush(); err != nil {
		return 0, nil, err
	}
	return len(batch), skipped, nil
}

// permanent reports whether applying e failed in a way no retry changes:
// its bytes do not decode (Prepare, a pure function of the entry), or its
// origin does not verify. Such an entry is recorded and skipped at once, so
// that the entries behind it do not wait for MaxAttempts retries.
func permanent(p Projection, e domain.LedgerEntry, err error) bool {
	if errors.Is(err, ErrOriginUnverified) {
		return true
	}
	if bp, ok := p.(Batched); ok {
		if _, _, perr := bp.Prepare(e); perr != nil {
			return true
		}
	}
	return false
}

// applyPending applies prepared entries with one ApplyBatch. When the
// database refuses something in it (not an outage), the transaction is
// doomed: the entries are marked to be applied alone the next time they
// are read, so that only the bad one fails.
func (r *Runner) applyPending(ctx context.Context, tx pgx.Tx, p Batched, entries []pendingEntry) error {
	prepared := make([]any, len(entries))
	for i, pe := range entries {
		prepared[i] = pe.prepared
	}
	start := time.Now()
	err := p.ApplyBatch(ctx, tx, prepared)
	first, last := entries[0].entry.Offset, entries[len(entries)-1].entry.Offset
	if err == nil {
		r.cfg.Logger.Debug("projection_batch_applied", slog.String("projection", p.Name()),
			slog.Int("entries", len(entries)), slog.Int64("first_offset", first), slog.Int64("last_offset", last),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
		return nil
	}
	outcome := FailureUnavailable
	if !eventstore.IsUnavailable(err) {
		outcome = FailureRetry
		r.mu.Lock()
		for _, pe := range entries {
			r.alone[attemptKey(p.Name(), pe.entry.Offset)] = true
		}
		r.mu.Unlock()
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
		slog.String("cause", redact.SafeError(err)))
	return fmt.Errorf("projection %s: apply batch: %w", p.Name(), err)
}

// applyInSavepoint applies e so that a failure leaves none of its writes
// and the batch transaction usable.
func applyInSavepoint(ctx context.Context, tx pgx.Tx, p Projection, e domain.LedgerEntry) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := p.Apply(ctx, sp, e); err != nil {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	return sp.Commit(ctx)
}

// RecordFailure records in projection_failures, inside tx, that
// projection could not apply e (cause). With replace, an existing record
// of the entry takes the new cause and attempts; without, it is kept.
func RecordFailure(ctx context.Context, tx pgx.Tx, projection string, e domain.LedgerEntry, cause error, attempts int, replace bool) error {
	conflict := `DO NOTHING`
	if replace {
		conflict = `DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now()`
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO projection_failures (projection, ledger_offset, svix_id, event_type, error, attempts)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (projection, ledger_offset) `+conflict,
		projection, e.Offset, e.SvixID, e.EventType, redact.SafeError(cause), attempts); err != nil {
		return fmt.Errorf("record projection failure: %w", err)
	}
	return nil
}

func (r *Runner) failed(projection string, e domain.LedgerEntry, outcome string) {
	if r.cfg.Failed != nil {
		r.cfg.Failed(projection, e, outcome)
	}
}

func (r *Runner) fail(projection string, offset int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := attemptKey(projection, offset)
	r.attempts[k]++
	return r.attempts[k]
}

func (r *Runner) forget(projection string, offset int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := attemptKey(projection, offset)
	delete(r.attempts, k)
	delete(r.alone, k)
}

func (r *Runner) isAlone(projection string, offset int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.alone[attemptKey(projection, offset)]
}

func attemptKey(projection string, offset int64) string {
	return fmt.Sprintf("%s/%d", projection, offset)
}
