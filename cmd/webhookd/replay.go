package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/projections"
)

// ReplayCmd rebuilds read models from the ledger.
type ReplayCmd struct {
	Database
	Projection string `arg:"" enum:"users,practices,memberships,all" help:"Read model to rebuild: users, practices, memberships, or all (one pass over the ledger)."`
	Check      bool   `name:"check" help:"Rebuild into scratch tables and compare each with the live one (row count and digest); change nothing. Exit status 1 when one differs."`
	BatchSize  int    `name:"batch-size" default:"5000" help:"Ledger entries read per query."`
	// The origin check of the live projections (serve's settings), so that
	// a rebuild refuses what the live projections refuse.
	SigningSecret  string `name:"signing-secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Clerk's signing secret(s), as for serve: entries not covered by a signed checkpoint are applied only if their Svix signature verifies; in development mode .webhookd/signing-secret."`
	RetiredSecrets string `name:"retired-signing-secrets" env:"WEBHOOKD_RETIRED_SIGNING_SECRETS" help:"Retired Clerk signing secrets, as for serve."`
	SigningKey     string `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"webhookd's signing key, as for serve: webhookd's own entries not covered by a signed checkpoint are applied only if signed with it; in development mode .webhookd/signing-key."`
}

// Run rebuilds (or checks) the read models and prints a JSON report: one
// object for one read model, an array for all.
func (c *ReplayCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	models := projections.All()
	if c.Projection != "all" {
		m, err := projections.ByName(c.Projection)
		if err != nil {
			return err
		}
		models = []projections.ReadModel{m}
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
	check := projectionOrigin(origin, keySetting)
	for i, m := range models {
		models[i] = projections.WithOrigin(m, check)
	}
	op := "rebuild " + c.Projection
	if c.Check {
		op = "check " + c.Projection
	}
	progress, finish := newProgress(logger, op)
	reports, err := projections.RebuildAll(ctx, projections.RebuildConfig{
		Pool: pool, Logger: logger, BatchSize: c.BatchSize, Progress: progress,
	}, models, c.Check)
	finish()
	// What was rebuilt before a failure is reported too.
	var out []byte
	if c.Projection == "all" {
		out, _ = json.MarshalIndent(reports, "", "  ")
	} else if len(reports) == 1 {
		out, _ = json.MarshalIndent(reports[0], "", "  ")
	}
	if len(reports) > 0 {
		fmt.Fprintln(g.stdout(), string(out))
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s interrupted: the live tables not yet swapped are untouched", op)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	drift := false
	for _, report := range reports {
		logger.Info("replay_finished", "projection", report.Projection, "check", c.Check, "entries", report.Entries,
			"rows", report.Rows, "equal", report.Equal, "swapped", report.Swapped, "skipped", len(report.Skipped), "seconds", report.Duration)
		if n := len(report.Skipped); n > 0 {
			where := "recorded in projection_failures"
			if c.Check {
				where = "the live projection records such entries in projection_failures"
			}
			fmt.Fprintf(g.stderr(), "webhookd: %d ledger entries could not be applied to %s and were skipped, as the live projection skips them (listed under \"skipped\"; %s)\n",
				n, report.Projection, where)
		}
		if c.Check && !report.Equal {
			fmt.Fprintf(g.stderr(), "webhookd: the live %s table differs from the ledger (%d live rows, %d rebuilt); `webhookd replay %s` rebuilds it\n",
				report.Projection, report.LiveRows, report.Rows, report.Projection)
			drift = true
		}
	}
	if drift {
		conn.Close()
		os.Exit(1)
	}
	return nil
}
