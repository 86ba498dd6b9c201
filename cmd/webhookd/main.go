// Command webhookd receives Clerk's webhooks, keeps every one in an
// append-only ledger in PostgreSQL and builds read models from it.
//
// Each subcommand lives in its own file and owns its flags; every flag can
// also be set from the environment variable named in its help.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is set at build time (-ldflags "-X main.version=…"); otherwise the
// module version or VCS revision is used.
var version = ""

// CLI is webhookd's command line.
type CLI struct {
	Globals

	Serve       ServeCmd       `cmd:"" help:"Receive Clerk webhooks and append them to the ledger."`
	Migrate     MigrateCmd     `cmd:"" help:"Apply the database migrations this webhookd knows."`
	Send        SendCmd        `cmd:"" help:"Send realistic, signed Clerk events to a webhookd, as Clerk's Svix does."`
	Users       UsersCmd       `cmd:"" help:"Manage application-owned user fields (role, practice) through the ledger."`
	Tokens      TokensCmd      `cmd:"" help:"Manage the tokens of the admin API and audit console (WEBHOOKD_ADMIN_ADDR)."`
	Replay      ReplayCmd      `cmd:"" help:"Rebuild a read model from the ledger without downtime (or --check it for drift)."`
	Projections ProjectionsCmd `cmd:"" help:"List and retry the ledger entries projections skipped."`
	Reconcile   ReconcileCmd   `cmd:"" help:"Compare Clerk's users (Backend API) with the users table and append what differs to the ledger. Exit status 1 when incomplete."`
	Bench       BenchCmd       `cmd:"" help:"Benchmark webhookd end to end against the database's own insert limit."`
	Keygen      KeygenCmd      `cmd:"" help:"Print a new Ed25519 key pair for signing ledger checkpoints (WEBHOOKD_SIGNING_KEY), or with --witness NAME a witness key."`
	Witness     WitnessCmd     `cmd:"" help:"Witness a webhookd ledger: fetch its checkpoints, check each extends the last one cosigned, cosign it and hand the cosignature back."`
	Export      ExportCmd      `cmd:"" help:"Write an audit bundle (entries, proofs, signed checkpoint) that webhookd verify checks offline."`
	Verify      VerifyCmd      `cmd:"" help:"Verify an audit bundle offline, or the whole live ledger with --db. Exit status 1 on any failure."`
	Version     VersionCmd     `cmd:"" help:"Print the version."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cli CLI
	k := kong.Parse(&cli,
		kong.Name("webhookd"),
		kong.Description("Clerk webhooks into a tamper-evident PostgreSQL ledger, with read models and an audit trail."),
		kong.UsageOnError(),
		kong.BindTo(ctx, (*context.Context)(nil)),
	)
	if err := k.Run(&cli.Globals); err != nil {
		// One line, naming what is wrong; details are in the log lines
		// before it. A setting that cannot work as given exits 2
		// (usageError), anything else 1.
		fmt.Fprintf(os.Stderr, "webhookd: %v\n", err)
		code := 1
		var coder kong.ExitCoder
		if errors.As(err, &coder) {
			code = coder.ExitCode()
		}
		os.Exit(code)
	}
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints the version.
func (VersionCmd) Run(g *Globals) error {
	_, err := fmt.Fprintln(g.stdout(), Version())
	return err
}

// Version returns the build's version.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
