package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Pool        *pgxpool.Pool
	Projections []Projection
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PollInterval is how long a caught-up projection waits before looking
	// for new ledger entries: the floor of projection lag. Defaults to 25ms.
	PollInterval time.Duration
	// BatchSize is how many entries one transaction applies. Defaults to 100.
	BatchSize int
	// MaxAttempts is how often an entry is tried before it is recorded in
	// projection_failures and skipped. Failures that mean the database is
	// unavailable do not count. Defaults to 5.
	MaxAttempts int
	// RetryInterval is the pause before an entry is tried again. Defaults
	// to 100ms.
	RetryInterval time.Duration
	// Applied, when set, is called after each entry is applied (inside the
	// transaction, before commit) with the projection name and the entry.
	Applied func(projection string, e domain.LedgerEntry)
	// Failed, when set, is called each time applying an entry fails, with
	// the projection name, the entry and what happens next:
	// FailureRetry (the entry is tried again), FailureUnavailable (the
	// database is unavailable; retried without counting an attempt) or
	// FailureSkipped (recorded in projection_failures and skipped).
	Failed func(projection string, e domain.LedgerEntry, outcome string)
	// Instrument, when set, is called with each Watermill router before it
	// runs (e.g. to add Prometheus router metrics). A router is built again
	// after a restart, so Instrument must tolerate being called repeatedly.
	Instrument func(*message.Router)
}

// Outcomes passed to RunnerConfig.Failed.
const (
	FailureRetry       = "retry"
	FailureUnavailable = "unavailable"
	FailureSkipped     = "skipped"
)

// FailureOutcomes lists every outcome passed to RunnerConfig.Failed.
var FailureOutcomes = []string{FailureRetry, FailureUnavailable, FailureSkipped}

// Runner runs projections as Watermill router handlers.
type Runner struct {
	cfg RunnerConfig

	running     chan struct{}
	runningOnce sync.Once

	mu       sync.Mutex
	attempts map[string]int  // projection/offset → failed attempts
	alone    map[string]bool // projection/offset → apply alone (see Batched)
}

// NewRunner prepares the router; Run starts it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
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

// newRouter builds a Watermill router with one subscriber per projection.
func (r *Runner) newRouter() (*message.Router, []*gate, error) {
	wlog := eventstore.WatermillLogger(r.cfg.Logger)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wlog)
	if err != nil {
		return nil, nil, err
	}
	var gates []*gate
	for _, p := range r.cfg.Projections {
		beginner, offsets := wsql.BeginnerFromPgx(r.cfg.Pool), eventstore.OffsetsAdapter()
		if bp, ok := p.(Batched); ok {
			acks := &ackTracker{OffsetsAdapter: offsets}
			beginner, offsets = batchBeginner{Beginner: beginner, acks: acks, apply: r.applier(bp)}, acks
		}
		sub, err := wsql.NewSubscriber(beginner, wsql.SubscriberConfig{
			ConsumerGroup:  ConsumerGroup(p.Name()),
			PollInterval:   r.cfg.PollInterval,
			ResendInterval: r.cfg.RetryInterval,
			RetryInterval:  r.cfg.RetryInterval,
			SchemaAdapter:  eventstore.LedgerSchema{SubscribeBatchSize: r.cfg.BatchSize},
			OffsetsAdapter: offsets,
		}, wlog)
		if err != nil {
			return nil, nil, fmt.Errorf("projection %s: %w", p.Name(), err)
		}
		g := &gate{}
		gates = append(gates, g)
		router.AddConsumerHandler("projection."+p.Name(), eventstore.Topic, gatedSubscriber{sub, g}, r.handler(p, g))
	}
	if r.cfg.Instrument != nil {
		r.cfg.Instrument(router)
	}
	return router, gates, nil
}

// gate keeps a projection's subscriber from giving up on its handler while
// the handler is using the subscriber's transaction. When the router
// closes (or its context ends), watermill-sql stops waiting for the
// handler and commits or rolls back the batch transaction at once; if the
// handler were still running a statement on that transaction's
// connection, the two would use one connection concurrently (pgx panics)
// and the handler's half-done writes could commit without its offset. So
// the gates are closed, waiting for handlers in hand, before the router.
type gate struct {
	mu     sync.Mutex
	closed bool
}

// enter reports whether the handler may run; if so, leave must follow.
func (g *gate) enter() bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	return true
}

func (g *gate) leave() { g.mu.Unlock() }

// close waits for a running handler to finish and turns later ones away.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// gatedSubscriber closes its gate before the subscriber.
type gatedSubscriber struct {
	*wsql.Subscriber
	gate *gate
}

// Close implements message.Subscriber.
func (s gatedSubscriber) Close() error {
	s.gate.close()
	return s.Subscriber.Close()
}

// errStopping nacks a message that arrives while the runner stops; the
// entry stays unapplied and is read again at the next start.
var errStopping = errors.New("projection runner is stopping")

// Run runs the projections until ctx is done. Once running, a subscriber
// rides out database outages by itself; subscribing needs the database,
// so when it is down at that moment Run tries again every second.
//
// On stop, the entry in hand is finished before the subscribers close: the
// router runs on a context that is not cancelled, and is closed through
// the gates instead (see gate).
func (r *Runner) Run(ctx context.Context) error {
	for {
		router, gates, err := r.newRouter()
		if err != nil {
			return err
		}
		closeRouter := func() {
			for _, g := range gates {
				g.close()
			}
			_ = router.Close()
		}
		stopped := make(chan struct{})
		go func() {
			select {
			case <-router.Running():
				r.runningOnce.Do(func() { close(r.running) })
			case <-ctx.Done():
			case <-stopped:
				return
			}
			select {
			case <-ctx.Done():
				closeRouter()
			case <-stopped:
			}
		}()
		err = router.Run(context.WithoutCancel(ctx))
		close(stopped)
		if ctx.Err() != nil || err == nil {
			closeRouter()
			return nil
		}
		r.cfg.Logger.Warn("projections_restart", slog.String("cause", audit.SafeError(err)))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// Running is closed once every projection has subscribed.
func (r *Runner) Running() chan struct{} { return r.running }

func (r *Runner) handler(p Projection, g *gate) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		if !g.enter() {
			return errStopping
		}
		defer g.leave()
		ctx := msg.Context()
		wtx, ok := wsql.TxFromContext(ctx)
		if !ok {
			return errors.New("projection: no subscriber transaction in message context")
		}
		var (
			tx  pgx.Tx
			btx *batchTx
		)
		switch t := wtx.(type) {
		case *batchTx:
			tx, btx = t.Tx, t
		case *wsql.PgxTx:
			tx = t.Tx
		default:
			return fmt.Errorf("projection: subscriber transaction is %T, want *sql.PgxTx", wtx)
		}
		if btx != nil && btx.doomed() {
			// Applying the batch's entries failed: the transaction will
			// be rolled back and the batch read again (see applier), so
			// there is nothing to do until the subscriber gets there.
			return nil
		}
		e, err := eventstore.EntryFromMessage(msg)
		if err != nil {
			return err
		}
		start := time.Now()
		buffered := false
		bp, batched := p.(Batched)
		switch {
		case batched && btx != nil && !r.isAlone(p.Name(), e.Offset):
			var prepared any
			if prepared, buffered, err = bp.Prepare(e); err == nil && buffered {
				btx.add(e, prepared)
			}
		case btx != nil:
			// To be applied alone: the entries before it first.
			if err = btx.applyPending(ctx, false); err != nil {
				return nil // doomed, as above
			}
			err = applyInSavepoint(ctx, tx, p, e)
		default:
			err = applyInSavepoint(ctx, tx, p, e)
		}
		if err == nil {
			r.forget(p.Name(), e.Offset)
			if buffered {
				return nil // applied with its batch, see flusher
			}
			if r.cfg.Applied != nil {
				r.cfg.Applied(p.Name(), e)
			}
			r.cfg.Logger.Debug("projection_applied",
				slog.String("projection", p.Name()), slog.Int64("ledger_offset", e.Offset),
				slog.String("svix_id", e.SvixID), slog.String("event_type", e.EventType),
				slog.String("clerk_id", e.SubjectID),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
			return nil
		}
		if eventstore.IsUnavailable(err) {
			// The database, not the event: retry without counting.
			r.failed(p.Name(), e, FailureUnavailable)
			if tx.Conn().IsClosed() {
				// The batch transaction died with its connection: it can
				// never commit, so neither this entry's writes nor any
				// position will stick. Acking lets watermill-sql reach its
				// commit, fail, and read the batch again on a fresh
				// connection, instead of retrying on the dead one until
				// the ack deadline.
				r.cfg.Logger.Warn("projection_retry", slog.String("projection", p.Name()),
					slog.Int64("ledger_offset", e.Offset), slog.String("cause", "database connection lost; the batch is read again"))
				return nil
			}
			r.cfg.Logger.Warn("projection_retry", slog.String("projection", p.Name()),
				slog.Int64("ledger_offset", e.Offset), slog.String("cause", audit.SafeError(err)))
			return err
		}
		attempts := r.fail(p.Name(), e.Offset)
		if attempts < r.cfg.MaxAttempts {
			r.failed(p.Name(), e, FailureRetry)
			r.cfg.Logger.Warn("projection_failed", slog.String("projection", p.Name()),
				slog.Int64("ledger_offset", e.Offset), slog.String("svix_id", e.SvixID),
				slog.String("event_type", e.EventType), slog.Int("attempt", attempts),
				slog.String("cause", audit.SafeError(err)))
			return err
		}
		// Poison: record it with the offset commit and move on.
		if _, rerr := tx.Exec(ctx, `
			INSERT INTO projection_failures (projection, ledger_offset, svix_id, event_type, error, attempts)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (projection, ledger_offset) DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now()`,
			p.Name(), e.Offset, e.SvixID, e.EventType, audit.SafeError(err), attempts); rerr != nil {
			return fmt.Errorf("record poison event: %w", rerr)
		}
		r.forget(p.Name(), e.Offset)
		r.failed(p.Name(), e, FailureSkipped)
		r.cfg.Logger.Error("projection_skipped", slog.String("projection", p.Name()),
			slog.Int64("ledger_offset", e.Offset), slog.String("svix_id", e.SvixID),
			slog.String("event_type", e.EventType), slog.Int("attempts", attempts),
			slog.String("cause", audit.SafeError(err)))
		return nil
	}
}

// applyInSavepoint applies e so that a failure leaves none of its writes:
// watermill-sql does not roll back a nacked message's writes on its own
// (watermill#224), since the batch shares one transaction.
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

func attemptKey(projection string, offset int64) string {
	return fmt.Sprintf("%s/%d", projection, offset)
}
