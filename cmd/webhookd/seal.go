package main

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/ingress"
)

// CheckpointPath serves the latest signed checkpoint and the public key.
const CheckpointPath = "/ledger/checkpoint"

// SealConfig configures the sealer inside webhookd serve.
type SealConfig struct {
	// SigningKey is WEBHOOKD_SIGNING_KEY (see audit.ParseSigningKey). When
	// empty, serve runs without a sealer and logs one warning.
	SigningKey string
	// Interval is how often a checkpoint is signed, when the tree grew.
	// Defaults to 10s.
	Interval time.Duration
	// PollInterval is how often the leader looks for new entries and a
	// follower for a lock to take. Defaults to 1s.
	PollInterval time.Duration
}

// newSealer builds the sealer actor and publishes GET /ledger/checkpoint on
// handler; it returns nil when no signing key is configured.
func (a *App) newSealer(handler *ingress.Handler) (*audit.Sealer, error) {
	cfg := a.cfg.Seal
	if cfg.SigningKey == "" {
		a.cfg.Logger.Warn("sealer_disabled", slog.String("reason", "WEBHOOKD_SIGNING_KEY is not set: the ledger is not sealed and no checkpoints are signed; run `webhookd keygen` to make a key"))
		return nil, nil
	}
	key, err := audit.ParseSigningKey(cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	handler.Handle("GET "+CheckpointPath, audit.CheckpointHandler(a.store, key.Public().(ed25519.PublicKey), a.cfg.Logger))
	return audit.NewSealer(audit.SealerConfig{
		Ledger: a.store,
		NewLock: func(ctx context.Context) (audit.LeaderLock, error) {
			l, err := a.store.NewSealerLock(ctx)
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		Key:          key,
		Interval:     cfg.Interval,
		PollInterval: cfg.PollInterval,
		Logger:       a.cfg.Logger,
		Now:          a.cfg.Now,
	}), nil
}

// startSealer runs the sealer, if any, until ctx is done; the returned
// channel is closed when it has stopped (after a last checkpoint).
func (a *App) startSealer(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.sealer == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		_ = a.sealer.Run(ctx)
	}()
	return done
}

// ledgerSealer is the sealer actor's type, named here so serve.go needs no
// import for it.
type ledgerSealer = audit.Sealer
