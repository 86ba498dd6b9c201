package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/eventstore"
)

// VerifyCmd checks an export bundle offline, or the live ledger.
type VerifyCmd struct {
	Bundle                string   `arg:"" optional:"" help:"Bundle directory or bundle archive (.tar.gz) written by webhookd export."`
	DB                    bool     `name:"db" help:"Re-check the whole live ledger instead of a bundle (needs DATABASE_URL)."`
	DatabaseURL           string   `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL URL for --db (DATABASE_URL)."`
	PublicKey             []string `name:"public-key" help:"Trusted public key (PEM file or base64 of 32 bytes), as GET /ledger/checkpoint publishes it; repeatable. Without it a bundle is checked against the key it carries."`
	RequireSignedManifest bool     `name:"require-signed-manifest" help:"Fail a bundle whose manifest is not signed (exported without WEBHOOKD_SIGNING_KEY)."`
	Witness               []string `name:"witness" help:"Witness verifier key (note form, from webhookd keygen --witness) that must have cosigned the checkpoint (the bundle's, or with --db the latest); repeatable."`
	Checkpoint            []string `name:"checkpoint" help:"With --db: a file holding a checkpoint note seen earlier (a witness's state file, a saved GET /ledger/checkpoint); the ledger must still give its root; repeatable."`
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
	witnesses, err := audit.ParseWitnessKeys(strings.Join(c.Witness, " "))
	if err != nil {
		return fmt.Errorf("--witness: %w", err)
	}
	var known []audit.KnownCheckpoint
	for _, path := range c.Checkpoint {
		k, err := audit.ReadKnownCheckpoint(path)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		known = append(known, k)
	}
	report, finish := newProgress(logger, "verify")
	p := &progressCounter{report: report, total: -1}
	opts := audit.VerifyOptions{TrustedKeys: trusted, Progress: p, RequireSignedManifest: c.RequireSignedManifest,
		Witnesses: witnesses, Known: known}
	var r audit.Report
	if c.DB {
		r, err = verifyDB(ctx, c.DatabaseURL, opts, p)
	} else {
		r, err = audit.VerifyBundle(ctx, c.Bundle, opts)
	}
	finish()
	if err != nil {
		return err
	}
	return printVerifyReport(os.Stdout, r, c.DB)
}

func verifyDB(ctx context.Context, url string, opts audit.VerifyOptions, p *progressCounter) (audit.Report, error) {
	pool, err := openMigrated(ctx, url)
	if err != nil {
		return audit.Report{}, err
	}
	defer pool.Close()
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
	if r.Witnessed {
		what += "; cosigned by every witness given"
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
