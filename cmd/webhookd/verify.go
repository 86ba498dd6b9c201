package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/eventstore"
)

// VerifyCmd checks an export bundle offline, or the live ledger.
type VerifyCmd struct {
	Bundle string `arg:"" optional:"" help:"Bundle directory or bundle archive (.tar.gz) written by webhookd export."`
	DB     bool   `name:"db" help:"Re-check the whole live ledger instead of a bundle (needs DATABASE_URL or development mode)."`
	Database
	PublicKey             []string `name:"public-key" help:"Trusted public key (PEM file or base64 of 32 bytes), as GET /ledger/checkpoint publishes it; repeatable."`
	TrustFile             string   `name:"trust-file" env:"WEBHOOKD_TRUST_FILE" help:"File of trusted public keys: one base64 key a line or PEM PUBLIC KEY blocks, # comments."`
	SigningKey            string   `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve signs checkpoints with: its public half is trusted when neither --public-key nor --trust-file is given; in development mode, .webhookd/signing-key."`
	TrustBundleKey        bool     `name:"trust-bundle-key" help:"Trust the key the bundle carries: proves the bundle intact, not who made it; the output names the key's fingerprint."`
	AllowUnsignedManifest bool     `name:"allow-unsigned-manifest" help:"Accept a bundle without manifest.sig (exported without WEBHOOKD_SIGNING_KEY): its actor, range, completeness and counts are then not authenticated."`
	RequireSignedManifest bool     `name:"require-signed-manifest" hidden:"" help:"Kept for old scripts: a signed manifest is required by default."`
	Witness               []string `name:"witness" help:"Witness verifier key (note form, from webhookd keygen --witness) that must have cosigned the checkpoint (the bundle's, or with --db the latest); repeatable."`
	Checkpoint            []string `name:"checkpoint" help:"With --db: a file holding a checkpoint note seen earlier (a witness's state file, a saved GET /ledger/checkpoint); the ledger must still give its root; repeatable."`
}

// errVerifyFailed makes main exit non-zero after the report is printed.
var errVerifyFailed = errors.New("verification failed")

// errVerifyInterrupted is returned when SIGINT or SIGTERM stops verify.
var errVerifyInterrupted = errors.New("verify was interrupted (SIGINT or SIGTERM) before it finished: nothing was verified")

// trustedKey is a public key verify accepts checkpoints from, with where it
// came from (named in the output).
type trustedKey struct {
	Key    ed25519.PublicKey
	Source string
}

// bundleKeySource names the trust given by --trust-bundle-key.
const bundleKeySource = "the bundle's own key, trusted with --trust-bundle-key: this proves the bundle intact, not who made it"

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
	if c.DB {
		// Which database, before which key: a missing one is a usage error.
		if dev, _, err := c.devMode(true); err != nil {
			return err
		} else if c.URL == "" && !dev {
			return errNoDatabase("verify --db")
		}
	}
	keys, err := c.trustedKeys(g.stderr())
	if err != nil {
		return err
	}
	witnesses, err := seal.ParseWitnessKeys(strings.Join(c.Witness, " "))
	if err != nil {
		return fmt.Errorf("--witness: %w", err)
	}
	var known []bundle.KnownCheckpoint
	for _, path := range c.Checkpoint {
		k, err := bundle.ReadKnownCheckpoint(path)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		known = append(known, k)
	}
	report, finish := newProgress(logger, "verify")
	p := &progressCounter{report: report, total: -1}
	r, err := verifyWithKeys(ctx, c.target(), keys, bundle.VerifyOptions{
		Progress: p, TrustBundleKey: c.TrustBundleKey, AllowUnsignedManifest: c.AllowUnsignedManifest,
		Witnesses: witnesses, Known: known,
	}, func(opts bundle.VerifyOptions) (bundle.Report, error) { return c.verifyDB(ctx, g, logger, opts, p) })
	finish()
	if err != nil {
		if ctx.Err() != nil {
			return errVerifyInterrupted
		}
		return err
	}
	return printVerifyReport(g.stdout(), r, c.DB, trustOf(r, keys, c.TrustBundleKey))
}

// target is what is verified, for verifyWithKeys: the bundle's path, or ""
// for the ledger.
func (c *VerifyCmd) target() string {
	if c.DB {
		return ""
	}
	return c.Bundle
}

// trustedKeys returns the keys checkpoints must be signed by, first found
// of: --public-key and --trust-file (together), --trust-bundle-key (none:
// the bundle's own key), the public half of WEBHOOKD_SIGNING_KEY, in
// development mode the key serve --dev keeps in .webhookd/signing-key.
// Without any of them verify refuses to run.
func (c *VerifyCmd) trustedKeys(stderr io.Writer) ([]trustedKey, error) {
	var keys []trustedKey
	for _, s := range c.PublicKey {
		text := []byte(s)
		if data, err := os.ReadFile(s); err == nil {
			text = data
		}
		k, err := seal.ParsePublicKey(text)
		if err != nil {
			return nil, fmt.Errorf("--public-key %s: %w", s, err)
		}
		keys = append(keys, trustedKey{Key: k, Source: "--public-key"})
	}
	if c.TrustFile != "" {
		data, err := os.ReadFile(c.TrustFile)
		if err != nil {
			return nil, fmt.Errorf("--trust-file: %w", err)
		}
		ks, err := seal.ParseTrustFile(data)
		if err != nil {
			return nil, fmt.Errorf("--trust-file %s: %w", c.TrustFile, err)
		}
		for _, k := range ks {
			keys = append(keys, trustedKey{Key: k, Source: "--trust-file " + c.TrustFile})
		}
	}
	switch {
	case len(keys) > 0 && c.TrustBundleKey:
		return nil, errors.New("--trust-bundle-key trusts whatever key the bundle carries: give it or --public-key/--trust-file, not both")
	case c.TrustBundleKey && c.DB:
		return nil, errors.New("--trust-bundle-key is for bundles: verify --db needs --public-key, --trust-file or WEBHOOKD_SIGNING_KEY")
	case len(keys) > 0 || c.TrustBundleKey:
		return keys, nil
	case c.SigningKey != "":
		key, err := seal.ParseSigningKey(c.SigningKey)
		if err != nil {
			return nil, err
		}
		return []trustedKey{{Key: key.Public().(ed25519.PublicKey), Source: "the public half of WEBHOOKD_SIGNING_KEY"}}, nil
	}
	if dev, err := c.devTrustedKey(stderr); err != nil || dev != nil {
		return dev, err
	}
	return nil, errors.New("verify needs a key to trust: give --public-key (the key GET /ledger/checkpoint publishes), --trust-file (WEBHOOKD_TRUST_FILE), or WEBHOOKD_SIGNING_KEY; for a bundle, --trust-bundle-key trusts the key it carries (proves it intact, not who made it)")
}

// verifyWithKeys checks the bundle at path (or, when path is "", the ledger
// with verifyLedger) against the trusted keys; with none, opts must set
// TrustBundleKey.
func verifyWithKeys(ctx context.Context, path string, keys []trustedKey, opts bundle.VerifyOptions, verifyLedger func(bundle.VerifyOptions) (bundle.Report, error)) (bundle.Report, error) {
	for _, k := range keys {
		opts.TrustedKeys = append(opts.TrustedKeys, k.Key)
	}
	if path == "" {
		return verifyLedger(opts)
	}
	return bundle.VerifyBundle(ctx, path, opts)
}

// trustOf says why the checkpoint's key in r was trusted.
func trustOf(r bundle.Report, keys []trustedKey, bundleKey bool) string {
	for _, k := range keys {
		if seal.KeyID(k.Key) == r.Checkpoint.KeyID {
			return k.Source
		}
	}
	if bundleKey {
		return bundleKeySource
	}
	return "not a trusted key"
}

// devTrustedKey is, in development mode, the public key of the
// development checkpoint key serve --dev keeps in .webhookd/signing-key, so
// that a bundle exported there verifies against a key found on this
// machine rather than the one the bundle carries; none otherwise.
func (c *VerifyCmd) devTrustedKey(stderr io.Writer) ([]trustedKey, error) {
	dev, _, err := c.devMode(true)
	if err != nil || !dev {
		return nil, err
	}
	key, path, found, err := readDevKey(c.devStateDir())
	if err != nil || !found {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stderr, "webhookd: development mode: trusting the development checkpoint key in %s (key id %s); --public-key names another\n", path, seal.KeyID(pub))
	return []trustedKey{{Key: pub, Source: "the development key in " + path}}, nil
}

func (c *VerifyCmd) verifyDB(ctx context.Context, g *Globals, logger *slog.Logger, opts bundle.VerifyOptions, p *progressCounter) (bundle.Report, error) {
	pool, conn, err := c.connect(ctx, "verify --db", g, logger, true)
	if err != nil {
		return bundle.Report{}, err
	}
	defer conn.Close()
	store, err := eventstore.New(pool, nil)
	if err != nil {
		return bundle.Report{}, err
	}
	defer store.Close()
	if n, err := store.IndexedCount(ctx); err == nil {
		p.total = n
	}
	return bundle.VerifyLedger(ctx, ledgerSource(store), opts)
}

// ledgerSource is what verify --db reads the ledger through: the store. A
// test replaces it to let the sealer sign between VerifyLedger's reads.
var ledgerSource = func(s *eventstore.Store) bundle.VerifyLedgerSource { return s }

// printVerifyReport writes the verdict: "OK …" or "FAIL …" then each
// problem. The first line names the key the checkpoint is signed by (its
// fingerprint, the key id) and why it was trusted.
func printVerifyReport(w io.Writer, r bundle.Report, ledger bool, trust string) error {
	key := "no checkpoint"
	if r.Checkpoint.KeyID != "" {
		key = fmt.Sprintf("signed by key %s (%s)", r.Checkpoint.KeyID, trust)
	}
	manifest := "manifest signed by the same key"
	if !r.ManifestSigned {
		manifest = "manifest NOT signed (--allow-unsigned-manifest): what it says of the export (actor, range, completeness, counts) is not authenticated"
	}
	what := fmt.Sprintf("%d entries (%d redacted, inclusion only) against checkpoint tree size %d %s; %s",
		r.Entries, r.Redacted, r.Checkpoint.TreeSize, key, manifest)
	if ledger {
		what = fmt.Sprintf("%d sealed entries, %d checkpoints (latest tree size %d, %s), %d entries not sealed yet",
			r.Entries, r.Checkpoints, r.Checkpoint.TreeSize, key, r.Unsealed)
	}
	if r.Witnessed {
		what += "; cosigned by every witness given"
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintf(w, "OK: %s\n", what)
		return err
	}
	fmt.Fprintf(w, "FAIL: %s\n", strings.TrimSuffix(what, "; "+manifest))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return fmt.Errorf("%w: %s", errVerifyFailed, r.Problems[0])
}
