package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/projections"
)

// ReplayCmd rebuilds a read model from the ledger.
type ReplayCmd struct {
	Database
	Projection string `arg:"" enum:"users" help:"Read model to rebuild: users."`
	Check      bool   `name:"check" help:"Rebuild into a scratch table and compare it with the live one (row count and digest); change nothing. Exit status 1 when they differ."`
	BatchSize  int    `name:"batch-size" default:"5000" help:"Ledger entries read per query."`
	// The origin check of the live projection (serve's settings), so that
	// a rebuild refuses what the live projection refuses.
	SigningSecret  string `name:"signing-secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Clerk's signing secret(s), as for serve: entries not covered by a signed checkpoint are applied only if their Svix signature verifies; in development mode .webhookd/signing-secret."`
	RetiredSecrets string `name:"retired-signing-secrets" env:"WEBHOOKD_RETIRED_SIGNING_SECRETS" help:"Retired Clerk signing secrets, as for serve."`
	SigningKey     string `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"webhookd's signing key, as for serve: webhookd's own entries not covered by a signed checkpoint are applied only if signed with it; in development mode .webhookd/signing-key."`
}

// Run rebuilds (or checks) the projection and prints a JSON report.
func (c *ReplayCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "replay", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	secrets, err := ingress.ParseSecrets(c.devSetting(conn, c.SigningSecret, devSecretFile))
	if err != nil {
		return fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w (replay checks each entry's origin as serve does: give it serve's settings)", err)
	}
	keySetting := c.devSetting(conn, c.SigningKey, devKeyFile)
	origin, err := newOriginVerifier(secrets, c.RetiredSecrets, keySetting)
	if err != nil {
		return err
	}
	op := "rebuild " + c.Projection
	if c.Check {
		op = "check " + c.Projection
	}
	progress, finish := newProgress(logger, op)
	report, err := projections.RebuildUsers(ctx, projections.RebuildConfig{
		Pool: pool, Logger: logger, BatchSize: c.BatchSize, Progress: progress,
		Origin: projectionOrigin(origin, keySetting),
	}, c.Check)
	finish()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s interrupted: the live table is untouched", op)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	out, _ := json.MarshalIndent(report, "", "  ")
	fmt.Fprintln(g.stdout(), string(out))
	logger.Info("replay_finished", "projection", c.Projection, "check", c.Check, "entries", report.Entries,
		"rows", report.Rows, "equal", report.Equal, "swapped", report.Swapped, "skipped", len(report.Skipped), "seconds", report.Duration)
	if n := len(report.Skipped); n > 0 {
		where := "recorded in projection_failures"
		if c.Check {
			where = "the live projection records such entries in projection_failures"
		}
		fmt.Fprintf(os.Stderr, "webhookd: %d ledger entries could not be applied to %s and were skipped, as the live projection skips them (listed under \"skipped\"; %s)\n",
			n, c.Projection, where)
	}
	if c.Check && !report.Equal {
		fmt.Fprintf(g.stderr(), "webhookd: the live %s table differs from the ledger (%d live rows, %d rebuilt); `webhookd replay %s` rebuilds it\n",
			c.Projection, report.LiveRows, report.Rows, c.Projection)
		conn.Close()
		os.Exit(1)
	}
	return nil
}
