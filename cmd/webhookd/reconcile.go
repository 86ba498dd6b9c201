package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/reconcile"
)

// ClerkAPI is how webhookd reaches Clerk's Backend API, by Clerk's own
// variable names (shared by reconcile and serve's periodic
// reconciliation).
type ClerkAPI struct {
	SecretKey string `name:"clerk-secret-key" env:"CLERK_SECRET_KEY" help:"Clerk's secret key (sk_live_… or sk_test_…) of the instance whose users are reconciled; never logged. Prefer the environment variable to the flag, which other users can see in the process list."`
	APIURL    string `name:"clerk-api-url" env:"CLERK_API_URL" help:"Base URL of Clerk's Backend API (default https://api.clerk.com/v1); a proxy or a test server can stand in."`
	Budget    int    `name:"reconcile-budget" env:"WEBHOOKD_RECONCILE_BUDGET" default:"50" help:"Most requests to Clerk's Backend API per 10 seconds, retries included (Clerk allows 100 on development instances, 1000 on production); -1 for no limit."`
}

// client returns the Clerk API client, or a usage error naming the
// setting at fault.
func (c ClerkAPI) client(retried func(status int, pause time.Duration)) (*reconcile.Client, error) {
	if c.Budget < -1 || c.Budget == 0 {
		return nil, usageError{fmt.Errorf("WEBHOOKD_RECONCILE_BUDGET: must be a positive number of requests per 10 seconds, or -1 for no limit, got %d", c.Budget)}
	}
	client, err := reconcile.NewClient(reconcile.ClientConfig{SecretKey: c.SecretKey, APIURL: c.APIURL, Budget: c.Budget, Retried: retried})
	if err != nil {
		return nil, usageError{err}
	}
	return client, nil
}

// ReconcileCmd compares Clerk's users, organizations and memberships with
// the users, practices and memberships read models and appends what
// differs to the ledger.
type ReconcileCmd struct {
	Database
	ClerkAPI
	DryRun     bool   `name:"dry-run" help:"Find the differences and print them (ids only) with the summary; append nothing."`
	SigningKey string `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve seals the ledger with (in development mode .webhookd/signing-key): every entry reconciliation appends is signed with it. Required once the ledger is sealed."`
}

// reconcileReport is the JSON summary reconcile prints.
type reconcileReport struct {
	reconcile.Summary
	DryRun  bool    `json:"dry_run"`
	Seconds float64 `json:"seconds"`
}

// Run reconciles once and prints the summary; an incomplete run exits 1.
func (c *ReconcileCmd) Run(ctx context.Context, g *Globals) error {
	client, err := c.client(nil)
	if err != nil {
		return err
	}
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "reconcile", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	store, err := eventstore.NewWithConfig(pool, eventstore.Config{MaxBatch: reconcileMaxBatch})
	if err != nil {
		return err
	}
	defer store.Close()
	var key ed25519.PrivateKey
	if !c.DryRun {
		if key, err = appendSigningKey(ctx, store, c.devSetting(conn, c.SigningKey, devKeyFile)); err != nil {
			return err
		}
	}
	progress, finish := reconcileProgress(logger)
	sum, err := reconcileOnce(ctx, pool, reconcile.Config{
		API: client, Pool: pool, Store: store, Sign: signer(key), DryRun: c.DryRun,
		Progress: progress, Logger: logger,
	}, true, logger)
	finish()
	if errors.Is(err, errReconcileBusy) {
		return err
	}
	out, _ := json.MarshalIndent(reconcileReport{Summary: sum, DryRun: c.DryRun, Seconds: sum.Took.Seconds()}, "", "  ")
	fmt.Fprintln(g.stdout(), string(out))
	if err != nil {
		if errors.Is(err, reconcile.Incomplete) {
			return fmt.Errorf("%w: %d errors (see the log); nothing was inferred about absent users, organizations or memberships unless their listing completed", reconcile.Incomplete, sum.TotalErrors())
		}
		return err
	}
	return nil
}

// reconcileProgress is one progress bar (or log) per kind of object, in
// the order reconciliation lists them.
func reconcileProgress(logger *slog.Logger) (report func(object string, done, total int64), finish func()) {
	var current string
	var bar func(done, total int64)
	end := func() {}
	return func(object string, done, total int64) {
			if object != current {
				end()
				current = object
				unit := object
				if object == "memberships" {
					unit = "organizations"
				}
				bar, end = newProgressOf(logger, "reconcile "+object, unit)
			}
			bar(done, total)
		}, func() {
			end()
		}
}

// reconcileMaxBatch is the event store's batch for reconciliation: a
// page's differences go in a few INSERTs.
const reconcileMaxBatch = 256

// signer returns the function that signs reconciliation's entries with
// key, or nil without a key (an unsealed ledger, see appendSigningKey).
func signer(key ed25519.PrivateKey) func(*domain.LedgerEntry) {
	if key == nil {
		return nil
	}
	return func(e *domain.LedgerEntry) { seal.SignInternalEntry(key, e) }
}

// errReconcileBusy is the answer of a run that would not wait for the
// reconciliation lock.
var errReconcileBusy = errors.New("another reconciliation is running")

// reconcileOnce runs one reconciliation on a connection of its own that
// holds the reconciliation lock (reconcile.Lock) for the run: with wait,
// it waits for a run elsewhere to end; without, it returns
// errReconcileBusy.
func reconcileOnce(ctx context.Context, pool *pgxpool.Pool, cfg reconcile.Config, wait bool, logger *slog.Logger) (reconcile.Summary, error) {
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return reconcile.Summary{}, fmt.Errorf("reconcile: connect: %s", redact.SafeError(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	held, release, err := reconcile.Lock(ctx, conn, false)
	if err != nil {
		return reconcile.Summary{}, err
	}
	if !held {
		if !wait {
			return reconcile.Summary{}, errReconcileBusy
		}
		logger.Info("reconcile_waiting", slog.String("why", "another reconciliation holds the lock; waiting for it to end"))
		if _, release, err = reconcile.Lock(ctx, conn, true); err != nil {
			return reconcile.Summary{}, err
		}
	}
	defer release()
	logger.Info("reconcile_started", slog.Bool("dry_run", cfg.DryRun))
	sum, err := reconcile.Run(ctx, conn, cfg)
	counts := func(prefix string, c reconcile.Counts) []any {
		return []any{slog.Int64(prefix+"listed", c.Listed), slog.Int64(prefix+"appended", c.Appended), slog.Int64(prefix+"unchanged", c.Unchanged),
			slog.Int64(prefix+"deleted", c.Deleted), slog.Int64(prefix+"errors", c.Errors), slog.Bool(prefix+"complete", c.Complete)}
	}
	attrs := counts("", sum.Counts)
	attrs = append(attrs, counts("organizations_", sum.Organizations)...)
	attrs = append(attrs, counts("memberships_", sum.Memberships)...)
	attrs = append(attrs, slog.Int64("requests", sum.Requests), slog.Bool("dry_run", cfg.DryRun), slog.Duration("took", sum.Took))
	for _, k := range reconcile.Kinds {
		attrs = append(attrs, slog.Int64("found_"+k, sum.Found[k]))
	}
	if err != nil {
		logger.Warn("reconcile_incomplete", attrs...)
	} else {
		logger.Info("reconcile_finished", attrs...)
	}
	return sum, err
}

// reconcileMetrics are serve's metrics of periodic reconciliation.
type reconcileMetrics struct {
	lastSuccess prometheus.Gauge
	runs        *prometheus.CounterVec
	differences *prometheus.CounterVec
}

func newReconcileMetrics(m *ingress.Metrics) *reconcileMetrics {
	r := &reconcileMetrics{
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ingress.MetricsNamespace, Name: "reconcile_last_success_timestamp_seconds",
			Help: "When this webhookd last completed a reconciliation with Clerk's Backend API (unix seconds; 0: never).",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ingress.MetricsNamespace, Name: "reconcile_runs_total",
			Help: "Periodic reconciliations by outcome: complete, incomplete (an error; nothing inferred from absences), skipped (another replica held the lock).",
		}, []string{"outcome"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ingress.MetricsNamespace, Name: "reconcile_differences_total",
			Help: "Differences reconciliation found between Clerk and the read models, by kind (users: missing, stale, deleted; organization_missing, organization_stale, organization_deleted; membership_missing, membership_stale, membership_deleted): each is a change whose webhook never arrived.",
		}, []string{"kind"}),
	}
	m.Registry().MustRegister(r.lastSuccess, r.runs, r.differences)
	for _, o := range []string{"complete", "incomplete", "skipped"} {
		r.runs.WithLabelValues(o)
	}
	for _, k := range reconcile.Kinds {
		r.differences.WithLabelValues(k)
	}
	return r
}

// startReconciler runs a reconciliation every interval (the first one
// interval after start) until ctx ends; one replica at a time runs it
// (reconcile.Lock, not waited for).
func (a *App) startReconciler(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.reconciler == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(a.cfg.Reconcile.Interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				a.reconcileNow(ctx)
			}
		}
	}()
	return done
}

// reconcileNow runs one periodic reconciliation and records its metrics.
func (a *App) reconcileNow(ctx context.Context) {
	cfg := a.reconciler.cfg
	cfg.Logger = a.cfg.Logger
	m := a.reconciler.metrics
	// As for every command that appends: on a sealed ledger the entries
	// must be signed with the key of its checkpoints, or the sealers
	// (this replica's or another's) would refuse them.
	key, err := appendSigningKey(ctx, a.store, a.cfg.Seal.SigningKey)
	if err != nil {
		m.runs.WithLabelValues("incomplete").Inc()
		a.cfg.Logger.Error("reconcile_failed", slog.String("cause", err.Error()))
		return
	}
	cfg.Sign = signer(key)
	sum, err := reconcileOnce(ctx, a.pool, cfg, false, a.cfg.Logger)
	switch {
	case errors.Is(err, errReconcileBusy):
		m.runs.WithLabelValues("skipped").Inc()
		a.cfg.Logger.Info("reconcile_skipped", slog.String("why", "another replica is reconciling"))
		return
	case err != nil && !errors.Is(err, reconcile.Incomplete):
		a.cfg.Logger.Warn("reconcile_failed", slog.String("cause", redact.SafeError(err)))
	}
	for k, n := range sum.Found {
		m.differences.WithLabelValues(k).Add(float64(n))
	}
	if err != nil {
		m.runs.WithLabelValues("incomplete").Inc()
		return
	}
	// The time first: a scrape between the two never sees a complete run
	// without its time.
	m.lastSuccess.Set(float64(a.cfg.Now().UnixNano()) / 1e9)
	m.runs.WithLabelValues("complete").Inc()
}

// ReconcileConfig configures serve's periodic reconciliation.
type ReconcileConfig struct {
	// Interval between runs; 0 (the default) turns it off.
	Interval time.Duration
	// Clerk is the Backend API's settings; CLERK_SECRET_KEY is required
	// when Interval is set.
	Clerk ClerkAPI
}

// appReconciler is serve's periodic reconciliation, when configured.
type appReconciler struct {
	cfg     reconcile.Config
	metrics *reconcileMetrics
}

// newReconciler prepares periodic reconciliation, or nil when it is off.
func (a *App) newReconciler(m *ingress.Metrics) (*appReconciler, error) {
	rc := a.cfg.Reconcile
	if rc.Interval < 0 {
		return nil, fmt.Errorf("WEBHOOKD_RECONCILE_INTERVAL: must be a positive duration, or 0 for off, got %s", rc.Interval)
	}
	if rc.Interval == 0 {
		return nil, nil
	}
	if rc.Clerk.Budget == 0 {
		rc.Clerk.Budget = reconcile.DefaultBudget
	}
	client, err := rc.Clerk.client(nil)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_RECONCILE_INTERVAL is set: %w", err)
	}
	return &appReconciler{
		cfg:     reconcile.Config{API: client, Pool: a.pool, Store: a.store},
		metrics: newReconcileMetrics(m),
	}, nil
}
