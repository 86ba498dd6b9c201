package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Database is the one definition of the database setting, embedded in every
// command that uses a database (serve, migrate, replay, users assign,
// export, verify, bench).
//
// Which database a command uses:
//   - DATABASE_URL (--database-url) when set: production form. --dev as
//     well is refused (exit status 2): one of them is a mistake.
//   - --dev (WEBHOOKD_DEV=true): the development database, an embedded
//     PostgreSQL under .webhookd/postgres in the working directory. serve
//     starts it; every other command joins the one serve runs there, or
//     starts it for its own run when none does.
//   - neither, in a directory where `webhookd serve --dev` has run (it left
//     .webhookd/postgres): every command but serve uses the development
//     database, and says so on stderr. serve never guesses: a production
//     deployment whose DATABASE_URL is missing or misspelt must not answer
//     Clerk 2xx into a throwaway database.
//   - neither, elsewhere (and serve): exit status 2, one line naming
//     DATABASE_URL and --dev.
type Database struct {
	URL     string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL URL or DSN of the ledger database."`
	Dev     bool   `name:"dev" env:"WEBHOOKD_DEV" help:"Development mode: use an embedded PostgreSQL under .webhookd/ in the working directory instead of DATABASE_URL (see README). Other commands run where serve --dev ran find it by themselves."`
	DevPort uint16 `name:"dev-port" env:"WEBHOOKD_DEV_PORT" default:"54329" help:"TCP port on 127.0.0.1 of the development PostgreSQL, when this command starts it."`

	// dir is the development state directory; tests set it, the command
	// line cannot. Defaults to devDir in the working directory.
	dir string
}

// usageError is a setting that cannot work as given; main exits 2 on it.
type usageError struct{ error }

// ExitCode makes the process exit with status 2 (kong.ExitCoder).
func (usageError) ExitCode() int { return 2 }

func (e usageError) Unwrap() error { return e.error }

// devStateDir is where development mode keeps its state.
func (d *Database) devStateDir() string {
	if d.dir != "" {
		return d.dir
	}
	return devDir
}

// devMode tells whether this command runs in development mode, and why:
// "--dev" or "found" (.webhookd/postgres in the working directory).
// guess is false for serve, which needs --dev.
func (d *Database) devMode(guess bool) (dev bool, why string, err error) {
	switch {
	case d.URL != "" && d.Dev:
		return false, "", usageError{errors.New("DATABASE_URL and --dev (WEBHOOKD_DEV) are both set: unset DATABASE_URL to use the development database, or leave out --dev to use DATABASE_URL")}
	case d.URL != "":
		return false, "", nil
	case d.Dev:
		return true, "--dev", nil
	case guess && d.hasDevState():
		return true, "found", nil
	}
	return false, "", nil
}

// hasDevState tells whether `webhookd serve --dev` has run in the working
// directory.
func (d *Database) hasDevState() bool {
	info, err := os.Stat(filepath.Join(d.devStateDir(), devPostgresDir))
	return err == nil && info.IsDir()
}

// errNoDatabase is the one line a command that needs a database prints
// when it has none.
func errNoDatabase(command string) error {
	return usageError{fmt.Errorf("DATABASE_URL is not set: set it to your PostgreSQL (postgres://user:password@host:5432/db), or run `webhookd %s --dev` (WEBHOOKD_DEV=true) to use the development database under %s/", command, devDir)}
}

// connection is the database a command uses, and what to release after.
type connection struct {
	// URL is the database to connect to.
	URL string
	// Dev is set in development mode.
	Dev bool
	// Joined: in development mode, serve --dev runs the database (rather
	// than this command, for its own run).
	Joined bool
	// Setting names where URL came from, for error messages.
	Setting string
	// Close stops the development PostgreSQL when this command started it.
	Close func()
}

// open resolves the database a command other than serve uses; command
// names it in messages ("export", "users assign"). In development mode it
// joins (or starts) the development PostgreSQL and says so on stderr.
func (d *Database) open(ctx context.Context, command string, stderr io.Writer, logger *slog.Logger) (connection, error) {
	dev, why, err := d.devMode(true)
	if err != nil {
		return connection{}, err
	}
	if !dev {
		if d.URL == "" {
			return connection{}, errNoDatabase(command)
		}
		return connection{URL: d.URL, Setting: "DATABASE_URL", Close: func() {}}, nil
	}
	pg, err := startDevPostgres(ctx, d.devStateDir(), d.DevPort, false)
	if err != nil {
		return connection{}, err
	}
	how := "joined the one webhookd serve --dev runs"
	if !pg.joined {
		how = "started it for this command and stops it after"
	}
	reason := "--dev"
	if why == "found" {
		reason = fmt.Sprintf("DATABASE_URL is not set and %s/ is here", devDir)
	}
	fmt.Fprintf(stderr, "webhookd: development mode (%s): using the development database under %s (%s)\n", reason, filepath.Join(devDir, devPostgresDir), how)
	return connection{URL: pg.url, Dev: true, Joined: pg.joined, Setting: "the development database", Close: func() { pg.stop(logger) }}, nil
}

// connect opens the pool of the database open resolves; with migrated,
// the schema must be at this binary's version (openMigrated). conn.Close
// closes the pool, then the development PostgreSQL when this command
// started it.
func (d *Database) connect(ctx context.Context, command string, g *Globals, logger *slog.Logger, migrated bool) (pool *pgxpool.Pool, conn connection, err error) {
	conn, err = d.open(ctx, command, g.stderr(), logger)
	if err != nil {
		return nil, connection{}, err
	}
	if migrated {
		pool, err = openMigrated(ctx, conn.URL)
	} else {
		pool, err = openPool(ctx, conn.URL)
	}
	if err != nil {
		conn.Close()
		return nil, connection{}, err
	}
	closeDev := conn.Close
	conn.Close = func() { pool.Close(); closeDev() }
	return pool, conn, nil
}

// devSetting returns setting, or, when it is empty and the command runs in
// development mode, what serve --dev keeps in the development file name
// (signing-secret, signing-key) in .webhookd/, if it exists: commands take
// the same secret and key as the serve --dev they work beside.
func (d *Database) devSetting(conn connection, setting, name string) string {
	if setting != "" || !conn.Dev {
		return setting
	}
	b, err := os.ReadFile(filepath.Join(d.devStateDir(), name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
