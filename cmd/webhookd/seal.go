package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/ingress"
)

// Paths of the ledger's tamper-evidence endpoints (see audit/seal).
const (
	CheckpointPath       = seal.CheckpointPath
	CheckpointJSONPath   = seal.CheckpointJSONPath
	ConsistencyProofPath = seal.ConsistencyProofPath
	InclusionProofPath   = seal.InclusionProofPath
	CosignaturesPath     = seal.CosignaturesPath
)

// SealConfig configures the sealer inside webhookd serve.
type SealConfig struct {
	// SigningKey is WEBHOOKD_SIGNING_KEY (see seal.ParseLogKey). When
	// empty, serve runs without a sealer and logs one warning.
	SigningKey string
	// Origin is WEBHOOKD_LOG_ORIGIN, the log's name in checkpoint notes.
	// Defaults to the note key's name, else seal.DefaultOrigin.
	Origin string
	// StatePath is WEBHOOKD_SEAL_STATE: a local file keeping the last
	// checkpoint signed or seen, so that a restart still knows it. Defaults
	// to none (the sealer then knows it in memory only).
	StatePath string
	// WitnessKeys is WEBHOOKD_WITNESS_KEYS: the witnesses whose
	// cosignatures POST /ledger/cosignatures accepts. Defaults to none.
	WitnessKeys string
	// Interval is how often a checkpoint is signed, when the tree grew.
	// Defaults to 10s.
	Interval time.Duration
	// PollInterval is how often the leader looks for new entries and a
	// follower for a lock to take. Defaults to 1s.
	PollInterval time.Duration
}

// newSealer builds the sealer actor and publishes the checkpoint, proof
// and cosignature endpoints on handler; it returns nil when no signing key
// is configured.
func (a *App) newSealer(handler *ingress.Handler, metrics *ingress.Metrics) (*seal.Sealer, error) {
	cfg := a.cfg.Seal
	if cfg.SigningKey == "" {
		a.cfg.Logger.Warn("sealer_disabled", slog.String("reason", "WEBHOOKD_SIGNING_KEY is not set: the ledger is not sealed and no checkpoints are signed; run `webhookd keygen` to make a key"))
		return nil, nil
	}
	key, err := seal.ParseLogKey(cfg.SigningKey, cfg.Origin)
	if err != nil {
		return nil, err
	}
	witnesses, err := seal.ParseWitnessKeys(cfg.WitnessKeys)
	if err != nil {
		return nil, errors.New("WEBHOOKD_WITNESS_KEYS: " + err.Error())
	}
	seal.LedgerHandlers{Ledger: a.store, Key: key, Witnesses: witnesses, Logger: a.cfg.Logger}.Register(handler.Handle)
	sealer := seal.NewSealer(seal.SealerConfig{
		Ledger: a.store,
		NewLock: func(ctx context.Context) (seal.LeaderLock, error) {
			l, err := a.store.NewSealerLock(ctx)
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		Key:          key.Key,
		Origin:       key.Origin,
		StatePath:    cfg.StatePath,
		VerifyOrigin: a.origin.Verify,
		Interval:     cfg.Interval,
		PollInterval: cfg.PollInterval,
		Logger:       a.cfg.Logger,
		Now:          a.cfg.Now,
	})
	metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ingress.MetricsNamespace,
		Name:      "sealer_integrity_failure",
		Help:      "1 while the sealer refuses to seal because the seal tables disagree with the checkpoints it knows (sealer_integrity_failure in the log), else 0.",
	}, func() float64 {
		if sealer.IntegrityFailure() != nil {
			return 1
		}
		return 0
	}))
	return sealer, nil
}

// SealerFailure is the sealer readiness check's detail while the sealer
// refuses to seal.
type SealerFailure struct {
	State   string `json:"state"` // "integrity_failure"
	Message string `json:"message"`
}

// checkSealer shows "ok" (or "disabled" without a signing key) and, after
// an integrity failure, degrades /readyz with what the sealer found:
// deliveries are still taken into the ledger, but nothing is sealed.
func (a *App) checkSealer(context.Context) (any, error) {
	if a.sealer == nil {
		return "disabled", nil
	}
	if err := a.sealer.IntegrityFailure(); err != nil {
		return SealerFailure{State: "integrity_failure", Message: err.Error()}, ingress.ErrDegraded
	}
	return nil, nil
}

// newOriginVerifier builds the origin check of ledger rows (the sealer's
// and the projections'): Clerk rows against the active and the retired
// Clerk secrets, webhookd's own rows against the signing key's public key.
// Without a signing key nothing webhookd appended can be verified (see
// projectionOrigin).
func newOriginVerifier(secrets []string, retired, signingKey string) (*seal.OriginVerifier, error) {
	if strings.TrimSpace(retired) != "" {
		old, err := ingress.ParseSecrets(retired)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOKD_RETIRED_SIGNING_SECRETS: %w", err)
		}
		secrets = append(slices.Clone(secrets), old...)
	}
	if signingKey == "" {
		return seal.NewOriginVerifier(secrets)
	}
	key, err := seal.ParseSigningKey(signingKey)
	if err != nil {
		return nil, err
	}
	return seal.NewOriginVerifier(secrets, key.Public().(ed25519.PublicKey))
}

// projectionOrigin is the users projection's origin check (and replay's):
// every row's, when webhookd has its signing key; without it, the entries
// webhookd signs (its own and reconciliation's, source clerk-api) are not
// signed and cannot be told from forged ones, so only Clerk rows are
// checked and those entries are applied as before.
func projectionOrigin(v *seal.OriginVerifier, signingKey string) func(domain.LedgerEntry) error {
	if signingKey != "" {
		return v.Verify
	}
	return func(e domain.LedgerEntry) error {
		if domain.SignedByWebhookd(e.Source) {
			return nil
		}
		return v.Verify(e)
	}
}

// appendSigningKey returns the key a command signs the entries it appends
// with (seal.SignInternalEntry): WEBHOOKD_SIGNING_KEY, which must be the
// key of the ledger's latest checkpoint, or the sealer would refuse the
// entry. Without the setting, a sealed ledger (one with a checkpoint) is
// refused with bundle.ErrNoSigningKeyToAppend, and an unsealed one gets the
// entry unsigned (nil key): no sealer checks it, and nothing could.
func appendSigningKey(ctx context.Context, store *eventstore.Store, setting string) (ed25519.PrivateKey, error) {
	cp, err := store.LatestCheckpoint(ctx)
	sealed := err == nil
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		return nil, fmt.Errorf("read the latest checkpoint: %s", domain.ErrorMessage(err))
	}
	if setting == "" {
		if sealed {
			return nil, errors.New(bundle.ErrNoSigningKeyToAppend)
		}
		return nil, nil
	}
	key, err := seal.ParseSigningKey(setting)
	if err != nil {
		return nil, err
	}
	if pub := key.Public().(ed25519.PublicKey); sealed && !bytes.Equal(pub, cp.PublicKey) {
		return nil, fmt.Errorf("WEBHOOKD_SIGNING_KEY (key id %s) is not the key that signed the latest checkpoint (key id %s): give the key webhookd serve seals with", seal.KeyID(pub), cp.KeyID)
	}
	return key, nil
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
type ledgerSealer = seal.Sealer
