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
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// RebuildConfig configures a rebuild of read models.
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
}

// RebuildReport tells what a rebuild of one read model did.
type RebuildReport struct {
	Projection string `json:"projection"`
	Entries    int64  `json:"entries"`
	// Position is the ledger position the rebuilt table reflects.
	Position eventstore.Position `json:"position"`
	Rows     int64               `json:"rows"`
	// Digest is the MD5 of the rebuilt rows in primary key order.
	Digest string `json:"digest"`
	// Swapped is true when the rebuilt table replaced the live one.
	Swapped bool `json:"swapped"`
	// For a check: the live table at the same position.
	LiveRows   int64  `json:"live_rows,omitempty"`
	LiveDigest string `json:"live_digest,omitempty"`
	Equal      bool   `json:"equal"`
	// Differing lists up to 20 primary keys whose rows differ.
	Differing []string `json:"differing_keys,omitempty"`
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

// Rebuild rebuilds one read model; see RebuildAll.
func Rebuild(ctx context.Context, cfg RebuildConfig, m ReadModel, check bool) (RebuildReport, error) {
	reports, err := RebuildAll(ctx, cfg, []ReadModel{m}, check)
	if len(reports) == 0 {
		return RebuildReport{Projection: m.Name()}, err
	}
	return reports[0], err
}

// RebuildAll rebuilds read models from one pass over the whole ledger,
// each into a shadow table while the live table keeps serving and the
// live projection keeps applying, then swaps each shadow in, in a
// transaction of its own that sets the live projection's position so that
// no entry is applied twice or missed. With check set it swaps nothing: it
// compares each rebuilt table with the live one at the same ledger
// position and reports whether they are equal.
//
// An entry that cannot be applied is skipped as the live projection skips
// it, and recorded in projection_failures when the swap commits. A rebuild
// never drops an entry the live projection applied: when the catch-up
// before the swap (the entries the live projection applied while the
// rebuild read the ledger) fails on one the live projection did not record
// as a failure, the swap is refused and the live table kept.
//
// Cancelling ctx before a swap leaves that live table untouched. The
// reports are in the order of models; on an error, those done so far.
func RebuildAll(ctx context.Context, cfg RebuildConfig, models []ReadModel, check bool) ([]RebuildReport, error) {
	cfg.defaults()
	start := time.Now()
	folds, reports, err := foldLedger(ctx, cfg, models)
	if err != nil {
		return nil, err
	}
	var out []RebuildReport
	for i, m := range models {
		report := &reports[i]
		shadow := fmt.Sprintf("%s_rebuild_%d", m.Table(), time.Now().UnixNano())
		if check {
			err = checkModel(ctx, cfg, m, shadow, folds[i], report)
		} else {
			err = swapModel(ctx, cfg, m, shadow, folds[i], report)
		}
		report.Duration = time.Since(start).Seconds()
		if err != nil {
			return out, fmt.Errorf("%s: %w", m.Name(), err)
		}
		out = append(out, *report)
	}
	return out, nil
}

// foldLedger reads the ledger once in safe order and folds every entry
// into each model's in-memory rows. Decoding (the JSON work) runs on every
// core; folding runs in ledger order.
func foldLedger(ctx context.Context, cfg RebuildConfig, models []ReadModel) ([]Fold, []RebuildReport, error) {
	var total int64
	if err := cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM `+eventstore.EventsTable).Scan(&total); err != nil {
		return nil, nil, fmt.Errorf("count ledger: %w", err)
	}
	folds := make([]Fold, len(models))
	reports := make([]RebuildReport, len(models))
	for i, m := range models {
		folds[i], reports[i].Projection = m.NewFold(), m.Name()
	}
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

	events := make([][]decoded, len(models))
	for i := range events {
		events[i] = make([]decoded, cfg.BatchSize)
	}
	var entries int64
	var position eventstore.Position
	for f := range next {
		if f.err != nil {
			return nil, nil, f.err
		}
		if len(f.batch) == 0 {
			break
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(f.batch); i += workers {
					for j, m := range models {
						d := &events[j][i]
						d.prepared, d.ok, d.err = m.Prepare(f.batch[i].LedgerEntry)
					}
				}
			})
		}
		wg.Wait()
		for j, m := range models {
			if err := checkPrepared(ctx, cfg.Pool, m, f.batch, events[j]); err != nil {
				return nil, nil, err
			}
			for i := range f.batch {
				d := events[j][i]
				switch {
				case d.err != nil:
					// The live projection records such an entry as poison
					// and skips it; the rebuild does the same, so both agree.
					reports[j].skip(cfg.Logger, f.batch[i].LedgerEntry, d.err)
				case d.ok:
					folds[j].Add(d.prepared)
				}
				events[j][i] = decoded{}
			}
		}
		entries += int64(len(f.batch))
		position = f.batch[len(f.batch)-1].Position
		if cfg.Progress != nil {
			cfg.Progress(entries, total)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	for i := range reports {
		reports[i].Entries, reports[i].Position = entries, position
	}
	return folds, reports, nil
}

// decoded is one ledger entry as a model prepared it for a fold.
type decoded struct {
	prepared any
	ok       bool
	err      error
}

// checkPrepared sets the error of each prepared entry of batch that m
// refuses before applying it (an origin that does not verify, see
// WithOrigin), as the live projection would refuse it.
func checkPrepared(ctx context.Context, q eventstore.Querier, m ReadModel, batch []eventstore.Scanned, ds []decoded) error {
	pc, ok := m.(preparedChecker)
	if !ok {
		return nil
	}
	var idx []int
	var prepared []any
	for i := range batch {
		if ds[i].err == nil && ds[i].ok {
			idx = append(idx, i)
			prepared = append(prepared, ds[i].prepared)
		}
	}
	if len(prepared) == 0 {
		return nil
	}
	errs, err := pc.CheckPrepared(ctx, q, prepared)
	if err != nil {
		return err
	}
	for k, i := range idx {
		if errs[k] != nil {
			ds[i].err = errs[k]
		}
	}
	return nil
}

// createShadow makes a table like m's and copies the fold's rows into it.
func createShadow(ctx context.Context, tx pgx.Tx, m ReadModel, shadow string, f Fold, temporary bool) error {
	kind := "TABLE"
	if temporary {
		kind = "TEMPORARY TABLE"
	}
	if _, err := tx.Exec(ctx, `CREATE `+kind+` `+shadow+` (LIKE `+m.Table()+` INCLUDING ALL)`); err != nil {
		return fmt.Errorf("create %s: %w", shadow, err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{shadow}, f.Columns(), pgx.CopyFromRows(f.Rows())); err != nil {
		return fmt.Errorf("fill %s: %w", shadow, err)
	}
	return nil
}

// skip reports e, which the rebuild could not apply, with a log line like
// the live runner's projection_skipped.
func (r *RebuildReport) skip(logger *slog.Logger, e domain.LedgerEntry, err error) {
	r.Skipped = append(r.Skipped, SkippedEntry{Offset: e.Offset, SvixID: e.SvixID, EventType: e.EventType, Error: redact.SafeError(err)})
	logger.Error("rebuild_skipped", slog.String("projection", r.Projection), slog.Int64("ledger_offset", e.Offset),
		slog.String("svix_id", e.SvixID), slog.String("event_type", e.EventType), slog.String("cause", redact.SafeError(err)))
}

// recordSkipped writes the entries the rebuild skipped to
// projection_failures, as the live runner records its poison entries; an
// entry the live projection recorded already keeps its record.
func recordSkipped(ctx context.Context, tx pgx.Tx, projection string, skipped []SkippedEntry) error {
	for _, s := range skipped {
		e := domain.LedgerEntry{Offset: s.Offset, SvixID: s.SvixID, EventType: s.EventType}
		if err := RecordFailure(ctx, tx, projection, e, errors.New(s.Error), 1, false); err != nil {
			return err
		}
	}
	return nil
}

// ErrCatchUpRefused is wrapped by a rebuild that refused to swap (or a
// check that could not compare) because an entry the live projection
// applied could not be applied to the rebuilt table.
var ErrCatchUpRefused = errors.New("the rebuilt table cannot take an entry the live projection applied")

// catchUp applies to the shadow table the entries between the rebuild's
// position and the live projection's, with the live projection's own
// code. An entry it cannot apply is skipped only when the live projection
// skipped it too (it is in projection_failures); otherwise the live table
// holds its effect and the rebuilt one would not, so catchUp fails.
func catchUp(ctx context.Context, tx pgx.Tx, m ReadModel, shadow string, from, to eventstore.Position, report *RebuildReport, logger *slog.Logger) (int64, error) {
	target := m.WithTable(shadow)
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
			err := applyInSavepoint(ctx, tx, target, e.LedgerEntry)
			if err == nil {
				continue
			}
			if eventstore.IsUnavailable(err) {
				return n, err
			}
			var skippedLive bool
			if qerr := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projection_failures WHERE projection = $1 AND ledger_offset = $2)`,
				m.Name(), e.Offset).Scan(&skippedLive); qerr != nil {
				return n, qerr
			}
			if !skippedLive {
				return n, fmt.Errorf("%w: ledger offset %d (svix_id %s, %s): %s; the live table is kept",
					ErrCatchUpRefused, e.Offset, e.SvixID, e.EventType, redact.SafeError(err))
			}
			report.skip(logger, e.LedgerEntry, err)
		}
		n += int64(len(batch))
		from = batch[len(batch)-1].Position
	}
	return n, nil
}

func digest(ctx context.Context, tx pgx.Tx, table, key string) (int64, string, error) {
	var (
		n int64
		d string
	)
	err := tx.QueryRow(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY `+key+`), '')) FROM `+table+` t`).Scan(&n, &d)
	return n, d, err
}

func swapModel(ctx context.Context, cfg RebuildConfig, m ReadModel, shadow string, f Fold, report *RebuildReport) error {
	// Fill the shadow table in its own transaction: the live table and
	// the live projection are not held up meanwhile.
	err := pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
		return createShadow(ctx, tx, m, shadow, f, false)
	})
	if err != nil {
		return err
	}
	dropShadow := func() {
		_, _ = cfg.Pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+shadow)
	}
	group := ConsumerGroup(m.Name())
	err = pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
		// Locking the consumer row pauses the live projection until commit.
		live, err := eventstore.ConsumerPosition(ctx, tx, group)
		if err != nil {
			return err
		}
		if report.Position.Less(live) {
			n, err := catchUp(ctx, tx, m, shadow, report.Position, live, report, cfg.Logger)
			if err != nil {
				return err
			}
			report.Entries += n
			report.Position = live
		} else if err := eventstore.SetConsumerPosition(ctx, tx, group, report.Position); err != nil {
			return err
		}
		if err := recordSkipped(ctx, tx, m.Name(), report.Skipped); err != nil {
			return err
		}
		if report.Rows, report.Digest, err = digest(ctx, tx, shadow, m.Key()); err != nil {
			return err
		}
		old := shadow + "_replaced"
		for _, stmt := range []string{
			`LOCK TABLE ` + m.Table() + ` IN ACCESS EXCLUSIVE MODE`,
			`ALTER TABLE ` + m.Table() + ` RENAME TO ` + old,
			`ALTER TABLE ` + shadow + ` RENAME TO ` + m.Table(),
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

func checkModel(ctx context.Context, cfg RebuildConfig, m ReadModel, shadow string, f Fold, report *RebuildReport) error {
	deadline := time.Now().Add(cfg.CatchUpTimeout)
	table, key := m.Table(), m.Key()
	for {
		err := pgx.BeginFunc(ctx, cfg.Pool, func(tx pgx.Tx) error {
			live, err := eventstore.ConsumerPosition(ctx, tx, ConsumerGroup(m.Name()))
			if err != nil {
				return err
			}
			if live.Less(report.Position) {
				return fmt.Errorf("%w: it is at ledger position %d/%d, the rebuild at %d/%d",
					errLiveBehind, live.TxID, live.Offset, report.Position.TxID, report.Position.Offset)
			}
			if err := createShadow(ctx, tx, m, shadow, f, true); err != nil {
				return err
			}
			n, err := catchUp(ctx, tx, m, shadow, report.Position, live, report, cfg.Logger)
			if err != nil {
				return err
			}
			report.Entries += n
			report.Position = live
			if report.Rows, report.Digest, err = digest(ctx, tx, shadow, key); err != nil {
				return err
			}
			if report.LiveRows, report.LiveDigest, err = digest(ctx, tx, table, key); err != nil {
				return err
			}
			report.Equal = report.Rows == report.LiveRows && report.Digest == report.LiveDigest
			if !report.Equal {
				rows, err := tx.Query(ctx, `
					SELECT `+key+` FROM ((SELECT * FROM `+table+` EXCEPT SELECT * FROM `+shadow+`)
					UNION (SELECT * FROM `+shadow+` EXCEPT SELECT * FROM `+table+`)) d
					GROUP BY `+key+` ORDER BY `+key+` LIMIT 20`)
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
