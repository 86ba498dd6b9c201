package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// ExportCmd writes an audit bundle that `webhookd verify` checks offline.
type ExportCmd struct {
	Database
	From       string   `name:"from" help:"Entries received at or after this time (RFC 3339 or YYYY-MM-DD, UTC); default the beginning."`
	To         string   `name:"to" help:"Entries received before this time (RFC 3339 or YYYY-MM-DD, UTC); default now."`
	User       string   `name:"user" help:"Only entries about this Clerk user id (subject, or mentioned in the body), user_…."`
	Types      []string `name:"types" sep:"," help:"Only these event types, comma separated."`
	Redact     bool     `name:"redact" help:"Replace personal data in payloads; the bundle then proves inclusion of each entry's sealed leaf hash but cannot recompute it."`
	Out        string   `name:"out" required:"" help:"Bundle directory to create (must be empty or absent), or, ending in .tar.gz or .tgz, bundle archive file to create (must not exist)."`
	Actor      string   `name:"actor" env:"WEBHOOKD_ACTOR" help:"Who takes the export, recorded in the ledger; default user@host."`
	SigningKey string   `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve signs checkpoints with (as for serve), required (in development mode .webhookd/signing-key): it signs the export's ledger entry and the manifest (manifest.sig), so that what the manifest says of the export is authenticated too."`
}

// Run writes the bundle, records the export in the ledger and prints the
// manifest.
func (c *ExportCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	from, err := parseWhen("--from", c.From)
	if err != nil {
		return err
	}
	to, err := parseWhen("--to", c.To)
	if err != nil {
		return err
	}
	if c.User != "" && !strings.HasPrefix(c.User, "user_") {
		return errors.New("--user must be a Clerk user id, user_…")
	}
	pool, conn, err := c.connect(ctx, "export", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	// An export is recorded in the ledger as an entry webhookd signs, and
	// only a sealed ledger can be exported: the key is required.
	keySetting := c.devSetting(conn, c.SigningKey, devKeyFile)
	if keySetting == "" {
		return errors.New(bundle.ErrNoSigningKeyToAppend)
	}
	key, err := seal.ParseSigningKey(keySetting)
	if err != nil {
		return err
	}
	store, err := eventstore.New(pool, eventstore.WatermillLogger(logger))
	if err != nil {
		return err
	}
	defer store.Close()
	if conn.Joined {
		waitForDevCheckpoint(ctx, store, g.stderr(), time.Now())
	}
	if conn.Dev {
		// bundle.Export's advice (set WEBHOOKD_SIGNING_KEY) is for
		// production; serve --dev has a key already.
		if _, err := store.LatestCheckpoint(ctx); domain.ErrorCode(err) == domain.ENOTFOUND {
			return errors.New("export: the development ledger has no signed checkpoint yet: run `webhookd serve --dev` here and send an event (`webhookd send user.created`); a checkpoint is signed within a second")
		}
	}
	dir, archive := c.Out, ""
	if bundle.IsArchivePath(c.Out) {
		dir, archive = "", c.Out
	}
	report, finish := newProgress(logger, "export")
	p := &progressCounter{report: report, total: -1}
	m, err := bundle.Export(ctx, store, bundle.ExportOptions{
		From: from, To: to, User: c.User, Types: c.Types, Redact: c.Redact,
		Dir: dir, Archive: archive, Actor: actor(c.Actor), Record: store, Progress: p,
		Total: func(n int64) { p.total = n }, Key: key,
	})
	finish()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	out, _ := json.MarshalIndent(m, "", "  ")
	fmt.Fprintln(g.stdout(), string(out))
	logger.Info("export_written", "export_id", m.ExportID, "entries", m.Entries, "tree_size", m.TreeSize, "redacted", m.Redacted)
	return nil
}

// progressCounter turns Add calls into newProgress reports.
type progressCounter struct {
	report      func(done, total int64)
	done, total int64
}

// Add counts n more items done.
func (p *progressCounter) Add(n int) {
	p.done += int64(n)
	total := p.total
	if total < p.done {
		total = p.done
	}
	p.report(p.done, total)
}

func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: want RFC 3339 (2026-11-27T10:00:00Z) or a date (2026-11-27)", flag)
}

func actor(flag string) string {
	if flag != "" {
		return flag
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// devCheckpointWait bounds how long a development export waits for serve
// --dev's sealer (1s interval) to cover what was received before it.
const devCheckpointWait = 10 * time.Second

// waitForDevCheckpoint waits, in development mode with serve --dev running,
// until the latest checkpoint covers every entry received before since,
// so that an event sent a moment ago is in the bundle. After
// devCheckpointWait it gives up quietly: the export then holds what the
// latest checkpoint covers, as in production.
func waitForDevCheckpoint(ctx context.Context, store *eventstore.Store, stderr io.Writer, since time.Time) {
	ctx, cancel := context.WithTimeout(ctx, devCheckpointWait)
	defer cancel()
	told := false
	for {
		lag, err := store.SealLag(ctx)
		if err != nil || lag.OldestUncovered == nil || !lag.OldestUncovered.Before(since) {
			return
		}
		if !told {
			fmt.Fprintln(stderr, "webhookd: development mode: waiting for serve --dev to sign a checkpoint covering the latest entries")
			told = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
