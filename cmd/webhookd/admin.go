package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/admin"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/projections"
)

// adminWriteTimeout bounds an admin answer: longer than the webhook
// listener's, for a verification or an export of a large ledger.
const adminWriteTimeout = 10 * time.Minute

// newAdmin binds the admin listener (WEBHOOKD_ADMIN_ADDR) when it is set.
func (a *App) newAdmin(metrics *ingress.Metrics) error {
	if a.cfg.AdminAddr == "" {
		return nil
	}
	var key ed25519.PrivateKey
	if a.cfg.Seal.SigningKey != "" {
		// The sealer's key, in any form the sealer takes.
		logKey, err := seal.ParseLogKey(a.cfg.Seal.SigningKey, a.cfg.Seal.Origin)
		if err != nil {
			return err
		}
		key = logKey.Key
	}
	recorder := &admin.Recorder{Ledger: a.store, Key: key}
	srv := admin.New(admin.Config{
		Pool:        a.pool,
		Recorder:    recorder,
		Logger:      a.cfg.Logger,
		IdleTimeout: a.cfg.AdminIdle,
		Now:         a.cfg.AdminNow,
		Version:     Version(),
		Integrity: &admin.Integrity{
			Store:    a.store,
			Rejected: metrics.RejectedPerHour,
			Retry:    a.retryFailures(recorder),
		},
	})
	ln, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("WEBHOOKD_ADMIN_ADDR: cannot listen on %s: %v", a.cfg.AdminAddr, err)
	}
	a.adminListener = ln
	a.admin = srv
	a.adminServer = &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn),
	}
	return nil
}

// retryFailures is `webhookd projections retry` for the console: the same
// origin check as the live projections, recorded as the same ledger event.
func (a *App) retryFailures(recorder *admin.Recorder) func(ctx context.Context, projection string, offset int64, actor, reason string) ([]projections.RetryResult, error) {
	return func(ctx context.Context, projection string, offset int64, actor, reason string) ([]projections.RetryResult, error) {
		results, retryErr := projections.RetryFailures(ctx, a.pool, projections.FailureFilter{Projection: projection, Offset: offset},
			projectionOrigin(a.origin, a.cfg.Seal.SigningKey))
		if retryErr == nil && len(results) == 0 {
			return nil, projections.ErrNoFailures
		}
		id := projection
		if id == "" {
			id = "all"
		}
		if len(results) > 0 {
			if err := recorder.Record(ctx, domain.EventProjectionRetried, id, ProjectionRetried{ID: id, Actor: actor, Reason: reason, Results: results}); err != nil {
				return results, err
			}
		}
		return results, retryErr
	}
}

// AdminAddr is the admin listener's address ("" when off).
func (a *App) AdminAddr() string {
	if a.adminListener == nil {
		return ""
	}
	return a.adminListener.Addr().String()
}

// serveAdmin serves the admin listener, if any; the channel gets its
// error (never, when off).
func (a *App) serveAdmin() chan error {
	done := make(chan error, 1)
	if a.adminServer == nil {
		return done
	}
	a.cfg.Logger.Info("admin_started", slog.String("addr", a.AdminAddr()))
	go func() { done <- a.adminServer.Serve(a.adminListener) }()
	return done
}

// sweepAdminSessions removes idle console sessions every AdminSweep
// until ctx is done (admin.Server.SweepSessions); the channel is closed
// when it has stopped (at once when the admin listener is off).
func (a *App) sweepAdminSessions(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.admin == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		a.admin.SweepSessions(ctx, a.cfg.AdminSweep)
	}()
	return done
}

// stopAdmin drains the admin listener.
func (a *App) stopAdmin(ctx context.Context, done chan error) error {
	if a.adminServer == nil {
		return nil
	}
	if err := a.adminServer.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain admin requests: %w", err)
	}
	if err := <-done; err != nil && err != http.ErrServerClosed {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}
