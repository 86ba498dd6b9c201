package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/migrations"
)

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
	DatabaseURL     string        `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL URL (DATABASE_URL)."`
	SigningSecret   string        `name:"signing-secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Clerk's webhook signing secret(s), whsec_…; several separated by spaces or commas during a rotation (CLERK_WEBHOOK_SIGNING_SECRET or CLERK_WEBHOOK_SECRET)."`
	Addr            string        `name:"addr" env:"WEBHOOKD_ADDR" default:":8080" help:"Listen address (WEBHOOKD_ADDR)."`
	Migrate         bool          `name:"migrate" env:"WEBHOOKD_MIGRATE" help:"Apply pending migrations before serving (WEBHOOKD_MIGRATE)."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" env:"WEBHOOKD_SHUTDOWN_TIMEOUT" default:"15s" help:"How long to drain in-flight requests on SIGTERM (WEBHOOKD_SHUTDOWN_TIMEOUT)."`
}

// Run serves until ctx is cancelled (SIGINT/SIGTERM).
func (c *ServeCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	app, err := NewApp(ctx, AppConfig{
		DatabaseURL:     c.DatabaseURL,
		SigningSecret:   c.SigningSecret,
		Addr:            c.Addr,
		Migrate:         c.Migrate,
		ShutdownTimeout: c.ShutdownTimeout,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	return app.Run(ctx)
}

// AppConfig is everything a running webhookd needs.
type AppConfig struct {
	DatabaseURL   string
	SigningSecret string
	// Addr defaults to :8080; tests use 127.0.0.1:0.
	Addr    string
	Migrate bool
	// ShutdownTimeout defaults to 15s.
	ShutdownTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// App is a running webhookd: its listener is bound once NewApp returns, so
// Addr is known before Run.
type App struct {
	cfg      AppConfig
	pool     *pgxpool.Pool
	store    *eventstore.Store
	listener net.Listener
	server   *http.Server
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
	secrets, err := ingress.ParseSecrets(cfg.SigningSecret)
	if err != nil {
		return nil, fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w", err)
	}
	verifier, err := ingress.NewVerifier(secrets, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w", err)
	}
	pool, err := openPool(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, pool: pool}
	if err := a.prepareSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	a.store, err = eventstore.New(pool, nil)
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
			{Name: "database", Run: a.store.Ping},
			{Name: "migrations", Run: a.checkSchema},
		},
	})
	a.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("WEBHOOKD_ADDR: cannot listen on %s: %v", cfg.Addr, err)
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

// Addr is the address the server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Run serves until ctx is done, then drains in-flight requests for up to
// ShutdownTimeout and releases everything.
func (a *App) Run(ctx context.Context) error {
	defer a.pool.Close()
	defer a.store.Close()
	a.cfg.Logger.Info("webhookd_started", slog.String("addr", a.Addr()), slog.String("version", Version()))

	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.listener) }()

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	a.cfg.Logger.Info("webhookd_stopping", slog.Duration("drain_timeout", a.cfg.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.cfg.Logger.Info("webhookd_stopped")
	return nil
}
