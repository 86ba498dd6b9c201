package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// RebuildConfig configures a rebuild of the users read model.
type RebuildConfig struct {
	Pool *pgxpool.Pool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// BatchSize is how many ledger entries one read fetches. Defaults to
	// 5000.
	BatchSize int
	// Progress, when set, is called after each batch with the entries
	// read so far and the ledger's size when the rebuild started.
	Progress func(done, total int64)
	// CatchUpTimeout bounds how long a check waits for the live
	// projection to reach the rebuild's position. Defaults to 30s.
	CatchUpTimeout time.Duration
	// Origin checks entries' origin as Users.Origin does for the live
	// projection (give both the same, or a check reports drift): an entry
	// that fails and that no signed checkpoint covers is skipped. Unset,
	// nothing is checked.
	Origin func(domain.LedgerEntry) error
}

// RebuildReport tells what a rebuild did.
type RebuildReport struct {
	Entries int64 `json:"entries"`
	// Position is the ledger position the rebuilt table reflects.
	Position eventstore.Position `json:"position"`
	Rows     int64               `json:"rows"`
	// Digest is the MD5 of the rebuilt rows in clerk_id order.
	Digest string `json:"digest"`
	// Swapped is true when the rebuilt table replaced the live one.
	Swapped bool `json:"swapped"`
	// For a check: the live table at the same position.
	LiveRows   int64    `json:"live_rows,omitempty"`
	LiveDigest string   `json:"live_digest,omitempty"`
	Equal      bool     `json:"equal"`
	Differing  []string `json:"differing_clerk_ids,omitempty"`
	// Skipped lists the entries the rebuild could not apply, which it
	// skipped as the live projection does (see SkippedEntry).
	Skipped  []SkippedEntry `json:"skipped,omitempty"`
	Duration float64        `json:"seconds"`
}

// SkippedEntry is a ledger entry a rebuild could not apply. Like the live
// runner's poison entries it is skipped, not fatal: the entry can never
// leave the append-only ledger, so a rebuild that stopped at it could never
// run again. A rebuild that swaps records it in projection_failures (unless
// the live projection already did) in the swap's transaction.
type SkippedEntry struct {
	Offset    int64  `json:"ledger_offset"`
	SvixID    string `json:"svix_id"`
	EventType string `json:"event_type"`
	Error     string `json:"error"`
}

func (c *RebuildConfig) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.CatchUpTimeout <= 0 {
		c.CatchUpTimeout = 30 * time.Second
	}
}

// RebuildUsers rebuilds the users read model from the whole ledger into a
// shadow table while the live table keeps serving and the live projection
// keeps applying, then swaps the tables in one transaction and sets the
// live projection's position so that no entry is applied twice or missed.
// With check set it swaps nothing: it compares the rebuilt table with the
// live one at the same ledger position and reports whether they are equal.
//
// Cancelling ctx before the swap leaves the live table untouched.
func RebuildUsers(ctx context.Context, cfg RebuildConfig, check bool) (RebuildReport, error) {
	cfg.defaults()
	start := time.Now()
	states, report, err := foldUsers(ctx, cfg)
	if err != nil {
		return report, err
	}
	shadow := fmt.Sprintf("users_rebuild_%d", time.Now().UnixNano())
	if check {
		err = checkUsers(ctx, cfg, shadow, states, &report)
	} else {
		err = swapUsers(ctx, cfg, shadow, states, &report)
	}
	report.Duration = time.Since(start).Seconds()
	return report, err
}

// foldUsers reads the ledger in safe order and applies every entry to an
// in-memory map of users. Decoding (the JSON work) runs on every core;
// applying runs in ledger order.
func foldUsers(ctx context.Context, cfg RebuildConfig) (map[string]*UserState, RebuildReport, error) {
	var report RebuildReport
	var total int64
	if err := cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM `+eventstore.EventsTable).Scan(&total); err != nil {
		return nil, report, fmt.Errorf("count ledger: %w", err)
	}
	states := map[string]*UserState{}
	workers := runtime.GOMAXPROCS(0)

	type fetched struct {
		batch []eventstore.Scanned
		err   error
	}
	// Reading the next batch overlaps with decoding and applying this one.
	next := make(chan fetched, 1)
	go func() {
		defer close(next)
		pos := eventstore.Position{}
		for {
			batch, err := eventstore.ScanAfter(ctx, cfg.Pool, pos, eventstore.Position{}, cfg.BatchSize)
			select {
			case next <- fetched{batch, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(batch) == 0 {
				return
			}
			pos = batch[len(batch)-1].Position
		}
	}()

	events := make([]UserEvent, cfg.BatchSize)
	errs := make([]error, cfg.BatchSize)
	for f := range next {
		if f.err != nil {
			return nil, report, f.err
		}
		if len(f.batch) == 0 {
			break
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(f.batch); i += workers {
					events[i], errs[i] = DecodeUserEvent(f.batch[i].LedgerEntry)
					if errs[i] == nil && events[i].Kind != UserIgnored && cfg.Origin != nil {
						events[i].origin = cfg.Origin(f.batch[i].LedgerEntry)
					}
				}
			})
		}
		wg.Wait()
		if err := refuseUnprovenInFold(ctx, cfg.Pool, events[:len(f.batch)], errs); err != nil {
			return nil, report, err
		}
		for i := range f.batch {
			if errs[i] != nil {
				// The live projection records such an entry as poison and
				// skips it; the rebuild does the same, so both agree.
				report.skip(cfg.Logger, f.batch[i].LedgerEntry, errs[i])
				continue
			}
			ev := events[i]
			if ev.Kind == UserIgnored {
				continue
			}
			s := states[ev.ClerkID]
			if s == nil {
				n := NewUserState(ev.ClerkID)
				s = &n
				states[ev.ClerkID] = s
			}
			s.Apply(ev)
		}
		report.Entries += int64(len(f.batch))
		report.Position = f.batch[len(f.batch)-1].Position
		if cfg.Progress != nil {
			cfg.Progress(report.Entries, total)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, report, err
	}
	return states, report, nil
}

// refuseUnprovenInFold sets errs[i] for each event whose origin did not
// verify and that no signed checkpoint covers, as the live projection
// refuses it (refuseUnproven): one lookup per batch, none when all verify.
func refuseUnprovenInFold(ctx context.Context, q eventstore.Querier, events []UserEvent, errs []error) error {
	var offsets []int64
	for i, ev := range events {
		if errs[i] == nil && ev.origin != nil {
			offsets = append(offsets, ev.Offset)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	sealed, err := eventstore.CheckpointedOffsets(ctx, q, offsets)
	if err != nil {
		return err
	}
	for i, ev := range events {
		if errs[i] == nil && ev.origin != nil && !sealed[ev.Offset] {
			errs[i] = fmt.Errorf("%w: %w", ErrOriginUnverified, ev.origin)
		}
	}
	return nil
}

// createShadow makes a table like users and copies states into it.
func createShadow(ctx context.Context, tx pgx.Tx, shadow string, states map[string]*UserState, temporary bool) error {
	kind := "TABLE"
	if temporary {
		kind = "TEMPORARY TABLE"
	}
	if _, err := tx.Exec(ctx, `CREATE `+kind+` `+shadow+` (LIKE users INCLUDING ALL)`); err != nil {
		return fmt.Errorf("create %s: %w", shadow, err)
	}
	rows := make([][]any, 0, len(states))
	for _, s := range states {
		rows = append(rows, s.values())
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{shadow}, userColumnNames, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("fill %s: %w", shadow, err)
	}
	return nil
}

// skip reports e, which the rebuild could not apply, with a log line like
// the live runner's projection_skipped.
func (r *RebuildReport) skip(logger *slog.Logger, e domain.LedgerEntry, err error) {
	r.Skipped = append(r.Skipped, SkippedEntry{Offset: e.Offset, SvixID: e.SvixID, EventType: e.EventType, Error: audit.SafeError(err)})
	logger.Error("rebuild_skipped", slog.String("projection", "users"), slog.Int64("ledger_offset", e.Offset),
		slog.String("svix_id", e.SvixID), slog.String("event_type", e.EventType), slog.String("cause", audit.SafeError(err)))
}

// recordSkipped writes the entries the rebuild skipped to
// projection_failures, as the live runner records its poison entries; an
// entry the live projection recorded already keeps its record.
func recordSkipped(ctx context.Context, tx pgx.Tx, skipped []SkippedEntry) error {
	for _, s := range skipped {
		if _, err := tx.Exec(ctx, `
			INSERT INTO projection_failures (projection, ledger_offset, svix_id, event_type, error, attempts)
			VALUES ('users', $1, $2, $3, $4, 1)
			ON CONFLICT (projection, ledger_offset) DO NOTHING`, s.Offset, s.SvixID, s.EventType, s.Error); err != nil {
			return fmt.Errorf("record skipped entry: %w", err)
		}
	}
	return nil
}

// catchUp applies to table the entries between the rebuild's position and
// the live projection's, with the live projection's own code.
func catchUp(ctx context.Context, tx pgx.Tx, users Users, from, to eventstore.Position, report *RebuildReport, logger *slog.Logger) (int64, error) {
	var n int64
	for from.Less(to) {
		batch, err := eventstore.ScanAfter(ctx, tx, from, to, 1000)
		if err != nil {
			return n, err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			if err := applyInSavepoint(ctx, tx, users, e.LedgerEntry); err != nil {
				if eventstore.IsUnavailable(err) {
					return n, err
				}
				// Poison in the live projection too; see foldUsers.
				report.skip(logger, e.LedgerEntry, err)
				continue
			}
		}
		n += int64(len(batch))
		from = batch[len(batch)-1].Position
	}
	return n, nil
}

func digest(ctx context.Context, tx pgx.Tx, table string) (int64, string, error) {
	var (
		n int64
		d string
	)
	err := tx.QueryRow(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY clerk_id), '')) FROM `+table+` t`).Scan(&n, &d)
	return n, d, err
}

func swapUsers(ctx context.Context, cfg RebuildConfig, shadow string, states map[string]*UserState, report *RebuildReport) error {
	// Fill the shadow table in its own transaction: the live table and
	// the live projection are not held up meanwhile.
	err := pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
		return createShadow(ctx, tx, shadow, states, false)
	})
	if err != nil {
		return err
	}
	dropShadow := func() {
		_, _ = cfg.Pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+shadow)
	}
	err = pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
		// Locking the consumer row pauses the live projection until commit.
		live, err := eventstore.ConsumerPosition(ctx, tx, ConsumerGroup("users"))
		if err != nil {
			return err
		}
		if report.Position.Less(live) {
			n, err := catchUp(ctx, tx, Users{Table: shadow, Origin: cfg.Origin}, report.Position, live, report, cfg.Logger)
			if err != nil {
				return err
			}
			report.Entries += n
			report.Position = live
		} else if err := eventstore.SetConsumerPosition(ctx, tx, ConsumerGroup("users"), report.Position); err != nil {
			return err
		}
		if err := recordSkipped(ctx, tx, report.Skipped); err != nil {
			return err
		}
		if report.Rows, report.Digest, err = digest(ctx, tx, shadow); err != nil {
			return err
		}
		old := shadow + "_replaced"
		for _, stmt := range []string{
			`LOCK TABLE users IN ACCESS EXCLUSIVE MODE`,
			`ALTER TABLE users RENAME TO ` + old,
			`ALTER TABLE ` + shadow + ` RENAME TO users`,
			`DROP TABLE ` + old,
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("swap tables: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		dropShadow()
		return err
	}
	report.Swapped, report.Equal = true, true
	return nil
}

// errLiveBehind is returned by a check when the live projection does not
// reach the rebuild's position in time.
var errLiveBehind = errors.New("live projection is behind")

func checkUsers(ctx context.Context, cfg RebuildConfig, shadow string, states map[string]*UserState, report *RebuildReport) error {
	deadline := time.Now().Add(cfg.CatchUpTimeout)
	for {
		err := pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
			live, err := eventstore.ConsumerPosition(ctx, tx, ConsumerGroup("users"))
			if err != nil {
				return err
			}
			if live.Less(report.Position) {
				return fmt.Errorf("%w: it is at ledger position %d/%d, the rebuild at %d/%d",
					errLiveBehind, live.TxID, live.Offset, report.Position.TxID, report.Position.Offset)
			}
			if err := createShadow(ctx, tx, shadow, states, true); err != nil {
				return err
			}
			n, err := catchUp(ctx, tx, Users{Table: shadow, Origin: cfg.Origin}, report.Position, live, report, cfg.Logger)
			if err != nil {
				return err
			}
			report.Entries += n
			report.Position = live
			if report.Rows, report.Digest, err = digest(ctx, tx, shadow); err != nil {
				return err
			}
			if report.LiveRows, report.LiveDigest, err = digest(ctx, tx, "users"); err != nil {
				return err
			}
			report.Equal = report.Rows == report.LiveRows && report.Digest == report.LiveDigest
			if !report.Equal {
				rows, err := tx.Query(ctx, `
					SELECT clerk_id FROM ((SELECT * FROM users EXCEPT SELECT * FROM `+shadow+`)
					UNION (SELECT * FROM `+shadow+` EXCEPT SELECT * FROM users)) d
					GROUP BY clerk_id ORDER BY clerk_id LIMIT 20`)
				if err != nil {
					return err
				}
				if report.Differing, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
					return err
				}
			}
			// Nothing of the check stays: the temporary table goes with
			// the rollback.
			return errRollback
		})
		switch {
		case errors.Is(err, errRollback):
			return nil
		case errors.Is(err, errLiveBehind) && time.Now().Before(deadline):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		case errors.Is(err, errLiveBehind):
			return fmt.Errorf("%v; is `webhookd serve` running? Run the check again once it has caught up", err)
		default:
			return err
		}
	}
}

var errRollback = errors.New("rollback")
