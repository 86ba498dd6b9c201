package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/admin"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/forward"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/migrations"
	"github.com/webhookd/webhookd/projections"
)

// errNoSecret is the one line serve prints without a webhook signing
// secret; it says how to get one for local use, where there is no Clerk
// dashboard to copy it from (and as root no --dev to make one).
var errNoSecret = errors.New("CLERK_WEBHOOK_SIGNING_SECRET is not set: use the Signing Secret Clerk's dashboard shows for your endpoint; for local use any whsec_ secret works, e.g. export CLERK_WEBHOOK_SIGNING_SECRET=whsec_$(head -c 24 /dev/urandom | base64) (webhookd send signs with it too), or run `webhookd serve --dev` as a non-root user, which makes one")

// HTTP server timeouts: a slow or stalled client cannot hold a connection
// (and through it a database connection) for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// ServeCmd runs the webhook receiver.
type ServeCmd struct {
	Database
	SigningSecret   string        `name:"signing-secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Clerk's webhook signing secret(s), whsec_…; several separated by spaces or commas during a rotation. With --dev and unset: a development secret kept in .webhookd/signing-secret."`
	RetiredSecrets  string        `name:"retired-signing-secrets" env:"WEBHOOKD_RETIRED_SIGNING_SECRETS" help:"Clerk signing secrets no longer in use, whsec_…, separated by spaces or commas: never accepted for deliveries, only to verify ledger rows they signed that are not sealed yet."`
	Addr            string        `name:"addr" env:"WEBHOOKD_ADDR" default:":8080" help:"Listen address."`
	Migrate         bool          `name:"migrate" env:"WEBHOOKD_MIGRATE" help:"Apply pending migrations before serving (always on with --dev)."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"WEBHOOKD_SHUTDOWN_TIMEOUT" default:"15s" help:"How long to drain in-flight requests on SIGTERM."`
	PollInterval    time.Duration `name:"projection-poll-interval" env:"WEBHOOKD_PROJECTION_POLL_INTERVAL" default:"25ms" help:"How often a caught-up projection looks for new ledger entries."`
	MaxLag          time.Duration `name:"max-projection-lag" env:"WEBHOOKD_MAX_PROJECTION_LAG" default:"1m" help:"/readyz fails when a projection's oldest unapplied entry is older than this."`
	MaxLockHold     time.Duration `name:"max-append-lock-hold" env:"WEBHOOKD_MAX_APPEND_LOCK_HOLD" default:"10s" help:"/readyz fails when one transaction has held the ledger's append lock longer than this: appends and every ledger reader are waiting for it."`
	SigningKey      string        `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"Ed25519 key that signs ledger checkpoints: base64 of the 32-byte seed (webhookd keygen) or the path of a file holding it or a PEM PKCS #8 key; unset, the ledger is not sealed (with --dev: a development key kept in .webhookd/signing-key)."`
	LogOrigin       string        `name:"log-origin" env:"WEBHOOKD_LOG_ORIGIN" help:"The log's name in checkpoint notes (C2SP tlog-checkpoint origin, also the note key name); default: the note key's name, else webhookd/<key id>."`
	SealState       string        `name:"seal-state" env:"WEBHOOKD_SEAL_STATE" help:"Local file where the sealer keeps the last checkpoint it signed or saw, so that after a restart seal tables that fell behind it are still an integrity failure."`
	WitnessKeys     string        `name:"witness-keys" env:"WEBHOOKD_WITNESS_KEYS" help:"Witness verifier keys (note form, from webhookd keygen --witness) whose cosignatures POST /ledger/cosignatures accepts, separated by spaces or commas."`
	SealInterval    time.Duration `name:"seal-interval" env:"WEBHOOKD_SEAL_INTERVAL" help:"How often the sealer signs a checkpoint when the ledger grew. Defaults to 10s (1s with --dev)."`
	FailedAuthRate  float64       `name:"failed-auth-rate" env:"WEBHOOKD_FAILED_AUTH_RATE" default:"1" help:"Requests per second, per source address, that may fail verification before further failures are answered 429. Verified deliveries are never limited."`
	FailedAuthBurst int           `name:"failed-auth-burst" env:"WEBHOOKD_FAILED_AUTH_BURST" default:"20" help:"Failed verifications a source address may make at once before the rate applies."`
	MaxInFlight     int           `name:"max-in-flight" env:"WEBHOOKD_MAX_IN_FLIGHT" default:"64" help:"Verified webhook deliveries parsed and appended at once; beyond it webhookd answers 503 with Retry-After."`
	MaxBodyReads    int           `name:"max-body-reads-per-source" env:"WEBHOOKD_MAX_BODY_READS_PER_SOURCE" default:"16" help:"Request bodies one source address (IPv6: one /64) may be sending at once; beyond it webhookd answers 429 before reading the body."`
	BodyReadTimeout time.Duration `name:"body-read-timeout" env:"WEBHOOKD_BODY_READ_TIMEOUT" default:"10s" help:"Time allowed to receive a request body; a body not complete by then is answered 400 body_unreadable and counts as a failed verification (at most 30s)."`
	RejectLogEvery  time.Duration `name:"reject-log-interval" env:"WEBHOOKD_REJECT_LOG_INTERVAL" default:"10s" help:"Rejected requests (4xx) are logged in full once per source address, event and reason in this interval and summarised in one rejections_suppressed line at its end; 0 logs every one. Metrics count every request."`
	TrustedProxies  string        `name:"trusted-proxies" env:"WEBHOOKD_TRUSTED_PROXIES" help:"CIDR prefixes of proxies whose X-Forwarded-For is honoured, separated by spaces or commas; default none."`
	ReconcileEvery  time.Duration `name:"reconcile-interval" env:"WEBHOOKD_RECONCILE_INTERVAL" help:"Reconcile the users read model with Clerk's Backend API this often (as webhookd reconcile does; one replica at a time); needs CLERK_SECRET_KEY. Default 0: off."`
	ClerkAPI
	ForwardURL    string        `name:"forward-nats-url" env:"WEBHOOKD_FORWARD_NATS_URL" help:"NATS server URL(s), comma-separated (nats://127.0.0.1:4222): publish every ledger entry, in ledger order, to a JetStream stream on subject clerk.<event type>. Unset: no forwarding."`
	ForwardStream string        `name:"forward-stream" env:"WEBHOOKD_FORWARD_STREAM" default:"CLERK" help:"JetStream stream the forwarder publishes to; created (subjects clerk.>) if missing."`
	ForwardPrefix string        `name:"forward-subject-prefix" env:"WEBHOOKD_FORWARD_SUBJECT_PREFIX" default:"clerk" help:"First token(s) of the forwarder's subjects, <prefix>.<event type>; another prefix lets two deployments share one NATS account."`
	ForwardTypes  string        `name:"forward-types" env:"WEBHOOKD_FORWARD_TYPES" help:"Event types to forward, as glob patterns separated by spaces or commas (user.*, organization*); default every type."`
	ForwardDupes  time.Duration `name:"forward-duplicate-window" env:"WEBHOOKD_FORWARD_DUPLICATE_WINDOW" default:"10m" help:"Duplicate window (Nats-Msg-Id) of a stream the forwarder creates; an existing stream keeps its own."`
	AdminAddr     string        `name:"admin-addr" env:"WEBHOOKD_ADMIN_ADDR" help:"Listen address of the admin API (/api/) and audit console (/); unset, they are off (with --dev: 127.0.0.1:8081). Keep it private: behind TLS and a network you trust."`
	AdminIdle     time.Duration `name:"admin-idle-timeout" env:"WEBHOOKD_ADMIN_IDLE_TIMEOUT" default:"15m" help:"A console session ends after this long without a request."`
	ProfileDir    string        `name:"profile-dir" env:"WEBHOOKD_PROFILE_DIR" hidden:"" help:"Write a CPU profile of the whole run (cpu.pprof) and an allocation profile at exit (allocs.pprof) into this directory (webhookd bench --profile sets it)."`
}

// Run serves until ctx is cancelled (SIGINT/SIGTERM).
func (c *ServeCmd) Run(ctx context.Context, g *Globals) error {
	dev, _, err := c.devMode(false)
	if err != nil {
		return err
	}
	if !dev && c.URL == "" {
		return errNoDatabase("serve")
	}
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	tuneGC()
	if c.ProfileDir != "" {
		stop, err := startProfiles(c.ProfileDir)
		if err != nil {
			return err
		}
		defer stop(logger)
	}
	if dev {
		// An embedded PostgreSQL, stopped once serving ends (dev.go).
		pg, err := c.startDevMode(ctx, logger, g.stdout())
		if err != nil {
			return err
		}
		defer pg.stop(logger)
	}
	app, err := NewApp(ctx, AppConfig{
		DatabaseURL:     c.URL,
		SigningSecret:   c.SigningSecret,
		RetiredSecrets:  c.RetiredSecrets,
		Addr:            c.Addr,
		Migrate:         c.Migrate,
		ShutdownTimeout: c.ShutdownTimeout,
		PollInterval:    c.PollInterval,
		MaxLag:          c.MaxLag,
		MaxLockHold:     c.MaxLockHold,
		Seal: SealConfig{SigningKey: c.SigningKey, Origin: c.LogOrigin, StatePath: c.SealState,
			WitnessKeys: c.WitnessKeys, Interval: c.SealInterval},
		FailedAuthRate:  c.FailedAuthRate,
		FailedAuthBurst: c.FailedAuthBurst,
		MaxInFlight:     c.MaxInFlight,
		MaxBodyReads:    c.MaxBodyReads,
		BodyReadTimeout: c.BodyReadTimeout,
		RejectLogEvery:  c.RejectLogEvery,
		TrustedProxies:  c.TrustedProxies,
		Reconcile:       ReconcileConfig{Interval: c.ReconcileEvery, Clerk: c.ClerkAPI},
		Forward: ForwardConfig{URL: c.ForwardURL, Stream: c.ForwardStream, SubjectPrefix: c.ForwardPrefix, Types: c.ForwardTypes,
			DuplicateWindow: c.ForwardDupes},
		AdminAddr: c.AdminAddr,
		AdminIdle: c.AdminIdle,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	return app.Run(ctx)
}

// startDevMode turns c into a development configuration: it starts the
// embedded PostgreSQL (see package devdb), points c at it with --migrate
// on and, for what is not set, uses the development signing secret and
// checkpoint key kept in .webhookd/ and a 1s seal interval. It prints what
// a developer needs to out.
func (c *ServeCmd) startDevMode(ctx context.Context, logger *slog.Logger, out io.Writer) (*devPostgres, error) {
	dir := c.devStateDir()
	pg, err := startDevPostgres(ctx, dir, c.DevPort, true)
	if err != nil {
		return nil, err
	}
	c.URL = pg.url
	c.Migrate = true

	banner := devBanner{addr: c.Addr, sendAddr: os.Getenv("WEBHOOKD_ADDR"), databaseURL: pg.url}
	if banner.sendAddr == "" {
		banner.sendAddr = defaultAddr
	}
	if c.SigningSecret == "" {
		banner.secret.value, banner.secret.created, err = loadOrCreateDevSecret(dir)
		if err != nil {
			pg.stop(logger)
			return nil, err
		}
		banner.secret.file = filepath.Join(devDir, devSecretFile)
		c.SigningSecret = banner.secret.value
	}
	if c.SigningKey == "" {
		banner.key.value, banner.key.created, err = loadOrCreateDevKey(dir)
		if err != nil {
			pg.stop(logger)
			return nil, err
		}
		banner.key.file = filepath.Join(devDir, devKeyFile)
		c.SigningKey = banner.key.value
	}
	if c.SealInterval <= 0 {
		c.SealInterval = devSealInterval
	}
	if c.AdminAddr == "" {
		c.AdminAddr = devAdminAddr
	}
	banner.adminAddr = c.AdminAddr
	banner.seal = c.SealInterval
	logger.Info("development_mode", slog.String("data_dir", filepath.Join(devDir, devPostgresDir)), slog.String("database", describeURL(pg.url)))
	banner.print(out)
	return pg, nil
}

// defaultAddr is WEBHOOKD_ADDR's default, for serve and send.
const defaultAddr = ":8080"

// devAdminAddr is WEBHOOKD_ADMIN_ADDR's default in development mode.
const devAdminAddr = "127.0.0.1:8081"

// AppConfig is everything a running webhookd needs.
type AppConfig struct {
	DatabaseURL   string
	SigningSecret string
	// RetiredSecrets are Clerk signing secrets that only verify the origin
	// of ledger rows (seal.OriginVerifier), never deliveries. Defaults to
	// none.
	RetiredSecrets string
	// Addr defaults to :8080; tests use 127.0.0.1:0.
	Addr    string
	Migrate bool
	// ShutdownTimeout defaults to 15s.
	ShutdownTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// PollInterval is the projections' poll interval. Defaults to 25ms.
	PollInterval time.Duration
	// MaxLag is the projection lag beyond which /readyz fails. Defaults
	// to one minute.
	MaxLag time.Duration
	// MaxLockHold is how long a transaction may hold the ledger's append
	// lock before /readyz fails. Defaults to 10 seconds (an append holds
	// it for milliseconds).
	MaxLockHold time.Duration
	// Seal configures the ledger sealer (seal.go); off without a key.
	Seal SealConfig
	// FailedAuthRate and FailedAuthBurst shape the per-source token bucket
	// of requests failing verification. Default to 1/s and 20.
	FailedAuthRate  float64
	FailedAuthBurst int
	// MaxInFlight bounds the verified deliveries parsed and appended at
	// once. Defaults to 64.
	MaxInFlight int
	// MaxBodyReads bounds the bodies one source may be sending at once.
	// Defaults to 16.
	MaxBodyReads int
	// BodyReadTimeout bounds the time to receive one body. Defaults to
	// 10s; at most readTimeout (30s).
	BodyReadTimeout time.Duration
	// RejectLogEvery is the interval over which rejected requests are
	// logged in aggregate (ingress.Config.RejectLogInterval). Zero (the
	// flag's 0) logs every rejection; unset in tests' AppConfig means the
	// same, and serve's flag defaults to 10s.
	RejectLogEvery time.Duration
	// TrustedProxies is a list of CIDR prefixes whose X-Forwarded-For is
	// honoured. Defaults to none.
	TrustedProxies string
	// Reconcile configures periodic reconciliation with Clerk's Backend
	// API (reconcile.go). Off by default.
	Reconcile ReconcileConfig
	// Forward configures the NATS JetStream forwarder (forward.go); off
	// without a URL.
	Forward ForwardConfig
	// AdminAddr is the admin API and console's listen address (package
	// admin). Defaults to none: off.
	AdminAddr string
	// AdminIdle ends idle console sessions. Defaults to 15 minutes.
	AdminIdle time.Duration
	// AdminSweep is how often idle console sessions are removed from
	// admin_sessions. Defaults to admin.DefaultSessionSweep (a minute).
	AdminSweep time.Duration
	// AdminNow is the console sessions' clock. Defaults to time.Now (not
	// Now: tests move the sessions' clock alone).
	AdminNow func() time.Time
}

// App is a running webhookd: its listener is bound once NewApp returns, so
// Addr is known before Run.
type App struct {
	cfg    AppConfig
	pool   *pgxpool.Pool
	store  *eventstore.Store
	runner *projections.Runner
	sealer *ledgerSealer
	// forwarder publishes the ledger to NATS JetStream; nil when off.
	forwarder *forward.Forwarder
	// origin checks ledger rows' origin for the sealer and projections.
	origin   *seal.OriginVerifier
	listener net.Listener
	server   *http.Server
	handler  *ingress.Handler
	// reconciler is periodic reconciliation; nil when off.
	reconciler *appReconciler
	// admin is the admin listener's server (nil when off).
	adminListener net.Listener
	adminServer   *http.Server
	admin         *admin.Server
}

// rejectLogInterval maps the setting (0: log every rejection) to
// ingress.Config's (negative: log every rejection).
func rejectLogInterval(every time.Duration) time.Duration {
	if every <= 0 {
		return -1
	}
	return every
}

// NewApp checks the configuration, connects to the database, checks (or
// applies) the schema and binds the listen address. Each failure is one
// line naming the setting at fault.
func NewApp(ctx context.Context, cfg AppConfig) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = time.Minute
	}
	if cfg.MaxLockHold <= 0 {
		cfg.MaxLockHold = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if strings.TrimSpace(cfg.SigningSecret) == "" {
		return nil, errNoSecret
	}
	secrets, err := ingress.ParseSecrets(cfg.SigningSecret)
	if err != nil {
		return nil, fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w", err)
	}
	verifier, err := ingress.NewVerifier(secrets, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w", err)
	}
	origin, err := newOriginVerifier(secrets, cfg.RetiredSecrets, cfg.Seal.SigningKey)
	if err != nil {
		return nil, err
	}
	// Deliveries the handler verified are not verified again when the
	// projections (and the sealer) read their rows back unchanged.
	recent := seal.NewRecent(0)
	origin.WithRecent(recent)
	proxies, err := ingress.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_TRUSTED_PROXIES: %w", err)
	}
	if err := checkLimits(cfg); err != nil {
		return nil, err
	}
	if err := checkForward(cfg.Forward); err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, errNoDatabase("serve")
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, pool: pool, origin: origin}
	if err := a.prepareSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	metrics := a.newMetrics()
	a.store, err = eventstore.NewWithConfig(pool, eventstore.Config{
		Logger:  eventstore.WatermillLogger(cfg.Logger),
		Flushed: func(entries int, _ time.Duration, _ error) { metrics.LedgerBatch(entries) },
		Conflicted: func(c eventstore.Conflict) {
			metrics.LedgerConflict()
			// Digests only: the body is in ledger_conflicts.
			cfg.Logger.Warn("ledger_conflict",
				slog.String("svix_id", c.SvixID),
				slog.String("stored_sha256", c.StoredSHA256),
				slog.String("received_sha256", c.ReceivedSHA256),
				slog.String("remote_addr", c.SourceIP),
				slog.Bool("recorded", c.Recorded),
			)
		},
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	a.runner, err = projections.NewRunner(projectionHooks(metrics, projections.RunnerConfig{
		Pool:         pool,
		Projections:  projections.Checked(projectionOrigin(origin, cfg.Seal.SigningKey)),
		Logger:       cfg.Logger,
		PollInterval: cfg.PollInterval,
	}))
	if err != nil {
		pool.Close()
		return nil, err
	}
	handler := ingress.NewHandler(ingress.Config{
		Verifier: verifier,
		Ledger:   a.store,
		Logger:   cfg.Logger,
		Now:      cfg.Now,
		Version:  Version(),
		Readiness: []ingress.Check{
			{Name: "database", Run: noDetail(a.store.Ping)},
			{Name: "migrations", Run: noDetail(a.checkSchema)},
			{Name: "projections", Run: a.checkLag},
			{Name: "ledger_append_lock", Run: a.checkAppendLock},
			{Name: "sealer", Run: a.checkSealer},
			{Name: "forwarder", Run: a.checkForwarder},
		},
		Metrics:         metrics,
		Verified:        recent.Remember,
		TrustedProxies:  proxies,
		FailedAuthRate:  cfg.FailedAuthRate,
		FailedAuthBurst: cfg.FailedAuthBurst,
		MaxInFlight:     cfg.MaxInFlight,

		MaxBodyReadsPerSource: cfg.MaxBodyReads,
		BodyReadTimeout:       cfg.BodyReadTimeout,
		RejectLogInterval:     rejectLogInterval(cfg.RejectLogEvery),
	})
	a.handler = handler
	if a.sealer, err = a.newSealer(handler, metrics); err != nil {
		pool.Close()
		return nil, err
	}
	if a.reconciler, err = a.newReconciler(metrics); err != nil {
		pool.Close()
		return nil, err
	}
	if a.forwarder, err = a.newForwarder(metrics); err != nil {
		pool.Close()
		return nil, err
	}
	a.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		if a.forwarder != nil {
			a.forwarder.Close()
		}
		pool.Close()
		return nil, fmt.Errorf("WEBHOOKD_ADDR: cannot listen on %s: %v", cfg.Addr, err)
	}
	if err := a.newAdmin(metrics); err != nil {
		a.listener.Close()
		pool.Close()
		return nil, err
	}
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return a, nil
}

func (a *App) prepareSchema(ctx context.Context) error {
	db := sqlDB(a.pool)
	defer db.Close()
	if a.cfg.Migrate {
		applied, err := migrations.Up(ctx, db, nil)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			a.cfg.Logger.Info("migrations_applied", slog.Any("versions", applied))
		}
	}
	return migrations.Check(ctx, db)
}

func (a *App) checkSchema(ctx context.Context) error {
	db := sqlDB(a.pool)
	defer db.Close()
	return migrations.Check(ctx, db)
}

func noDetail(check func(context.Context) error) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) { return nil, check(ctx) }
}

// checkLag reports each projection's lag and fails when one is further
// behind than MaxLag.
func (a *App) checkLag(ctx context.Context) (any, error) {
	var lags []projections.Lag
	for _, p := range projections.All() {
		lag, err := projections.MeasureLag(ctx, a.pool, p.Name(), a.cfg.Now())
		if err != nil {
			return nil, errors.New("cannot measure projection lag")
		}
		if lag.Seconds > a.cfg.MaxLag.Seconds() {
			return nil, fmt.Errorf("projection %s is %d events and %.0fs behind the ledger (limit %s)", lag.Projection, lag.Events, lag.Seconds, a.cfg.MaxLag)
		}
		lags = append(lags, lag)
	}
	return lags, nil
}

// LockWait is the failing state of the ledger_append_lock readiness
// check: a transaction has held the ledger's append lock longer than
// MaxLockHold, so appends and every ledger reader are waiting for it.
type LockWait struct {
	State string `json:"state"` // "waiting_on_transaction"
	// PID is the holding backend (pg_stat_activity.pid, for
	// pg_terminate_backend after a look at what it is).
	PID int32 `json:"pid"`
	// TransactionState is pg_stat_activity.state, e.g. "idle in
	// transaction" (empty if this role cannot see the session).
	TransactionState string `json:"transaction_state"`
	// Seconds is the age of the holder's transaction.
	Seconds float64 `json:"seconds"`
	// Waiting is how many transactions (appends) wait for the lock.
	Waiting int    `json:"waiting"`
	Message string `json:"message"`
}

// checkAppendLock fails, showing a LockWait, when one transaction has held
// the ledger's append lock for longer than MaxLockHold.
func (a *App) checkAppendLock(ctx context.Context) (any, error) {
	l, err := a.store.AppendLockState(ctx)
	if err != nil {
		return nil, errors.New("cannot read the ledger's append lock")
	}
	if l.Holder == nil || l.Holder.Age <= a.cfg.MaxLockHold {
		return nil, nil
	}
	msg := fmt.Sprintf("waiting on transaction: backend pid %d has held the ledger's append lock for %.0fs (limit %s); appends and every ledger reader wait until it commits or rolls back", l.Holder.PID, l.Holder.Age.Seconds(), a.cfg.MaxLockHold)
	return LockWait{State: "waiting_on_transaction", PID: l.Holder.PID, TransactionState: l.Holder.State,
		Seconds: l.Holder.Age.Seconds(), Waiting: l.Waiting, Message: msg}, errors.New(msg)
}

// Addr is the address the server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Run serves until ctx is done, then drains in-flight requests for up to
// ShutdownTimeout and releases everything.
func (a *App) Run(ctx context.Context) error {
	defer a.pool.Close()
	defer a.store.Close()
	a.cfg.Logger.Info("webhookd_started", slog.String("addr", a.Addr()), slog.String("version", Version()))

	// Two actors, the HTTP server and the projections; the first to stop
	// stops the other.
	httpErr := make(chan error, 1)
	go func() { httpErr <- a.server.Serve(a.listener) }()
	adminErr := a.serveAdmin()
	runCtx, cancelRunner := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRunner()
	runnerErr := make(chan error, 1)
	go func() { runnerErr <- a.runner.Run(runCtx) }()
	// The sealer (when configured) stops with the projections, after the drain.
	sealerDone := a.startSealer(runCtx)
	// So does the forwarder.
	forwarderDone := a.startForwarder(runCtx)
	rejectsDone := a.summariseRejections(runCtx)
	reconcileDone := a.startReconciler(runCtx)
	sessionsDone := a.sweepAdminSessions(runCtx)

	var failure error
	select {
	case err := <-httpErr:
		failure = fmt.Errorf("http server: %w", err)
		httpErr <- nil
	case err := <-runnerErr:
		if err == nil {
			err = errors.New("stopped")
		}
		failure = fmt.Errorf("projections: %w", err)
		runnerErr <- nil
	case err := <-adminErr:
		failure = fmt.Errorf("admin server: %w", err)
		adminErr <- nil
	case <-ctx.Done():
	}
	a.cfg.Logger.Info("webhookd_stopping", slog.Duration("drain_timeout", a.cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(shutdownCtx); err != nil {
		failure = errors.Join(failure, fmt.Errorf("drain in-flight requests: %w", err))
	}
	if err := <-httpErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		failure = errors.Join(failure, err)
	}
	if err := a.stopAdmin(shutdownCtx, adminErr); err != nil {
		failure = errors.Join(failure, err)
	}
	// Requests are drained; the projections finish the entry in hand.
	cancelRunner()
	if err := <-runnerErr; err != nil {
		failure = errors.Join(failure, fmt.Errorf("projections: %w", err))
	}
	<-sealerDone
	<-forwarderDone
	<-rejectsDone
	<-reconcileDone
	<-sessionsDone
	if failure != nil {
		return failure
	}
	a.cfg.Logger.Info("webhookd_stopped")
	return nil
}

// summariseRejections writes the rejected-request summary whenever its
// interval has ended, so that a flood that stops is still summarised, and
// once more when ctx ends (after the drain).
func (a *App) summariseRejections(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := a.cfg.RejectLogEvery
		if every <= 0 {
			return
		}
		// Checked several times per interval, so a summary is at most a
		// fraction of an interval late; the handler's clock decides.
		tick := time.NewTicker(max(every/4, 100*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				a.handler.FlushDueRejections(ctx)
			case <-ctx.Done():
				a.handler.FlushRejections(context.Background())
				return
			}
		}
	}()
	return done
}

// servingGCPercent is the garbage collector's GOGC for `webhookd serve`
// when the environment does not set GOGC. webhookd's live heap is a few
// MiB, so at Go's default of 100 it collects every few MiB allocated:
// dozens of times a second under load, about a third of its CPU (perf
// under make bench). At 400, make bench measured 168–190 µs of webhookd
// CPU per event instead of 208–230, for a peak RSS of 38 MiB instead of
// 26. 300 since the backlog bench (64 deliveries in flight): peak RSS
// 47–50 MiB instead of 52–54 (62–64 over 100,000 events, above the
// 64 MB target), webhookd CPU per event 112 µs against 109–124 (within
// the machine's noise). The soft memory limit keeps a large live heap
// (many 1 MiB bodies in flight) from growing fourfold before a
// collection.
const (
	servingGCPercent  = 300
	servingSoftMemMiB = 512
)

// tuneGC applies servingGCPercent and servingSoftMemMiB unless GOGC or
// GOMEMLIMIT are set, which then decide as usual.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(servingGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(servingSoftMemMiB << 20)
	}
}
