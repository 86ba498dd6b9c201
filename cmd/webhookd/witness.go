package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/audit/seal"
)

// WitnessCmd runs a witness of a webhookd ledger: an auditor runs it on
// their own machine, with its own key and state file.
type WitnessCmd struct {
	LogURL   string        `name:"log-url" env:"WEBHOOKD_WITNESS_LOG_URL" required:"" help:"Base URL of the webhookd to witness, e.g. https://hooks.example.com (WEBHOOKD_WITNESS_LOG_URL)."`
	LogKey   string        `name:"log-key" env:"WEBHOOKD_WITNESS_LOG_KEY" required:"" help:"The log's signed-note verifier key (origin+hash+key), as webhookd keygen and GET /ledger/checkpoint.json print it (WEBHOOKD_WITNESS_LOG_KEY)."`
	Key      string        `name:"key" env:"WEBHOOKD_WITNESS_SIGNING_KEY" required:"" help:"This witness's signed-note private key (PRIVATE+KEY+…, from webhookd keygen --witness NAME), or a file holding it (WEBHOOKD_WITNESS_SIGNING_KEY)."`
	State    string        `name:"state" env:"WEBHOOKD_WITNESS_STATE" required:"" help:"State file: the last checkpoint this witness cosigned (WEBHOOKD_WITNESS_STATE)."`
	Interval time.Duration `name:"interval" env:"WEBHOOKD_WITNESS_INTERVAL" default:"1m" help:"How often to fetch and cosign the latest checkpoint (WEBHOOKD_WITNESS_INTERVAL)."`
	Once     bool          `name:"once" help:"Run one round and exit: status 1 when the checkpoint is refused or cannot be cosigned."`
}

// Run cosigns until ctx is done (or once). A refused checkpoint is logged
// as witness_refused at ERROR and the state is kept.
func (c *WitnessCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	w, err := c.witness(logger)
	if err != nil {
		return err
	}
	for {
		_, err := w.Once(ctx)
		if c.Once {
			return err
		}
		if err != nil && !errors.Is(err, seal.ErrWitnessRefused) {
			logger.Warn("witness_round_failed", slog.String("error", redact.SafeError(err)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Interval):
		}
	}
}

func (c *WitnessCmd) witness(logger *slog.Logger) (*seal.Witness, error) {
	logV, err := note.NewVerifier(strings.TrimSpace(c.LogKey))
	if err != nil {
		return nil, fmt.Errorf("--log-key: not a signed-note verifier key: %v", err)
	}
	skey := strings.TrimSpace(c.Key)
	if !strings.HasPrefix(skey, "PRIVATE+KEY+") {
		data, err := os.ReadFile(skey)
		if err != nil {
			return nil, errors.New("--key: neither a signed-note private key nor a readable file")
		}
		skey = strings.TrimSpace(string(data))
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, errors.New("--key: not an Ed25519 signed-note private key")
	}
	return &seal.Witness{LogURL: c.LogURL, Log: logV, Signer: signer, StatePath: c.State, Logger: logger}, nil
}
