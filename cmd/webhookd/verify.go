package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/eventstore"
)

// VerifyCmd checks an export bundle offline, or the live ledger.
type VerifyCmd struct {
	Bundle string `arg:"" optional:"" help:"Bundle directory or bundle archive (.tar.gz) written by webhookd export."`
	DB     bool   `name:"db" help:"Re-check the whole live ledger instead of a bundle (needs DATABASE_URL or development mode)."`
	Database
	PublicKey             []string `name:"public-key" help:"Trusted public key (PEM file or base64 of 32 bytes), as GET /ledger/checkpoint publishes it; repeatable. Without it, development mode trusts the key in .webhookd/signing-key, and otherwise a bundle is checked against the key it carries."`
	RequireSignedManifest bool     `name:"require-signed-manifest" help:"Fail a bundle whose manifest is not signed (exported without WEBHOOKD_SIGNING_KEY)."`
}

// errVerifyFailed makes main exit non-zero after the report is printed.
var errVerifyFailed = errors.New("verification failed")

// Run verifies and prints one line per problem; the first names the first
// failing entry. Exit status is non-zero on any failure.
func (c *VerifyCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	if (c.Bundle == "") == !c.DB {
		return errors.New("give either a bundle (directory or .tar.gz archive) or --db")
	}
	trusted, err := readKeys(c.PublicKey)
	if err != nil {
		return err
	}
	if len(trusted) == 0 {
		if trusted, err = c.devTrustedKeys(g.stderr()); err != nil {
			return err
		}
	}
	report, finish := newProgress(logger, "verify")
	p := &progressCounter{report: report, total: -1}
	opts := audit.VerifyOptions{TrustedKeys: trusted, Progress: p, RequireSignedManifest: c.RequireSignedManifest}
	var r audit.Report
	if c.DB {
		r, err = c.verifyDB(ctx, g, logger, opts, p)
	} else {
		r, err = audit.VerifyBundle(ctx, c.Bundle, opts)
	}
	finish()
	if err != nil {
		return err
	}
	return printVerifyReport(g.stdout(), r, c.DB)
}

// devTrustedKeys is, in development mode, the public key of the
// development checkpoint key serve --dev keeps in .webhookd/signing-key, so
// that a bundle exported there verifies against a key found on this
// machine rather than the one the bundle carries; none otherwise.
func (c *VerifyCmd) devTrustedKeys(stderr io.Writer) ([]ed25519.PublicKey, error) {
	dev, _, err := c.devMode(true)
	if err != nil || !dev {
		return nil, err
	}
	key, path, found, err := readDevKey(c.devStateDir())
	if err != nil || !found {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stderr, "webhookd: development mode: trusting the development checkpoint key in %s (key id %s); --public-key names another\n", path, audit.KeyID(pub))
	return []ed25519.PublicKey{pub}, nil
}

func (c *VerifyCmd) verifyDB(ctx context.Context, g *Globals, logger *slog.Logger, opts audit.VerifyOptions, p *progressCounter) (audit.Report, error) {
	pool, conn, err := c.connect(ctx, "verify --db", g, logger, true)
	if err != nil {
		return audit.Report{}, err
	}
	defer conn.Close()
	store, err := eventstore.New(pool, nil)
	if err != nil {
		return audit.Report{}, err
	}
	defer store.Close()
	if n, err := store.IndexedCount(ctx); err == nil {
		p.total = n
	}
	return audit.VerifyLedger(ctx, store, opts)
}

func readKeys(specs []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, s := range specs {
		text := []byte(s)
		if data, err := os.ReadFile(s); err == nil {
			text = data
		}
		k, err := audit.ParsePublicKey(text)
		if err != nil {
			return nil, fmt.Errorf("--public-key %s: %w", s, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// printVerifyReport writes the verdict: "OK …" or "FAIL …" then each problem.
func printVerifyReport(w io.Writer, r audit.Report, ledger bool) error {
	manifest := "manifest not signed"
	if r.ManifestSigned {
		manifest = "manifest signed by the same key"
	}
	what := fmt.Sprintf("%d entries (%d redacted, inclusion only) against checkpoint tree size %d signed by key %s; %s",
		r.Entries, r.Redacted, r.Checkpoint.TreeSize, r.Checkpoint.KeyID, manifest)
	if ledger {
		what = fmt.Sprintf("%d sealed entries, %d checkpoints (latest tree size %d), %d entries not sealed yet",
			r.Entries, r.Checkpoints, r.Checkpoint.TreeSize, r.Unsealed)
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintf(w, "OK: %s\n", what)
		return err
	}
	fmt.Fprintf(w, "FAIL: %s\n", what)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return fmt.Errorf("%w: %s", errVerifyFailed, r.Problems[0])
}
