package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
)

// Kinds of difference between Clerk and the users read model.
const (
	// KindMissing is a Clerk user the read model does not hold.
	KindMissing = "missing"
	// KindStale is a Clerk user the read model holds at an older
	// updated_at.
	KindStale = "stale"
	// KindDeleted is a user the read model holds as active that Clerk no
	// longer knows.
	KindDeleted = "deleted"
)

// Kinds lists every kind of difference.
var Kinds = []string{KindMissing, KindStale, KindDeleted}

// Lister is the part of Clerk's Backend API a reconciliation reads;
// *Client is one.
type Lister interface {
	CountUsers(ctx context.Context) (int64, error)
	ListUsers(ctx context.Context, offset, limit int) ([]json.RawMessage, error)
	GetUser(ctx context.Context, id string) (raw json.RawMessage, found bool, err error)
}

// Appender appends ledger entries; *eventstore.Store is one.
type Appender interface {
	Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error)
}

// Config configures a reconciliation.
type Config struct {
	// API is Clerk's Backend API. Required.
	API Lister
	// Pool is the database holding the ledger and the users read model.
	// Required.
	Pool *pgxpool.Pool
	// Store appends the differences. Required unless DryRun.
	Store Appender
	// Sign, when set, signs each entry before it is appended
	// (seal.SignInternalEntry with webhookd's key).
	Sign func(*domain.LedgerEntry)
	// DryRun finds the differences and appends nothing.
	DryRun bool
	// PageSize is the listing's page size. Defaults to MaxPageSize.
	PageSize int
	// Samples is how many differences Summary.Samples keeps. Defaults to 20.
	Samples int
	// Progress, when set, is called after each page with the users listed
	// so far and the total Clerk announced (which may change during the
	// run).
	Progress func(listed, total int64)
	// Logger defaults to slog.Default(). It receives ids, counts and
	// error codes, never a user's profile or the secret key.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Difference is one difference found, by user id only.
type Difference struct {
	Kind    string `json:"kind"`
	ClerkID string `json:"clerk_id"`
}

// Summary is what a reconciliation did.
type Summary struct {
	// Listed is how many users the listing returned.
	Listed int64 `json:"listed"`
	// Found counts the differences found, per kind (in a dry run too).
	Found map[string]int64 `json:"found"`
	// Appended is how many entries went into the ledger (0 in a dry run).
	Appended int64 `json:"appended"`
	// Unchanged is how many listed users the read model already held at
	// their version, or whose snapshot the ledger already held.
	Unchanged int64 `json:"unchanged"`
	// Deleted is how many users were soft-deleted (found gone, in a dry
	// run).
	Deleted int64 `json:"deleted"`
	// Errors counts the failures (a page, a user, a check, an append).
	Errors int64 `json:"errors"`
	// Complete is true when the listing ran to its end without an error,
	// so absences could be checked.
	Complete bool `json:"complete"`
	// Requests is how many requests Clerk's API received.
	Requests int64 `json:"requests"`
	// Samples are the first differences found (ids only).
	Samples []Difference `json:"samples,omitempty"`
	// Took is how long the run took.
	Took time.Duration `json:"-"`
}

// Incomplete is returned by Run when the run could not see everything.
var Incomplete = errors.New("reconciliation incomplete")

// Run compares Clerk's users with the users read model and appends to the
// ledger, for each Clerk user the read model misses or holds at an older
// updated_at, a clerk.user.snapshot of the user as the API returned it;
// and, only when the listing completed without any error, for each user
// the read model holds as active that the listing did not return and that
// GET /v1/users/{id} answers 404 for, a clerk.user.not_found. Nothing
// else writes: the users projection applies the entries.
//
// Every entry has a deterministic svix_id (domain.SnapshotKey,
// NotFoundKey) and keys already in the ledger are skipped, so runs are
// idempotent and concurrent runs append each entry once. The run does not
// take the reconciliation lock (see Lock).
//
// The error wraps Incomplete when anything failed (the summary says what
// was done), and is a plain error when the database could not be used.
func Run(ctx context.Context, conn *pgx.Conn, cfg Config) (Summary, error) {
	if cfg.PageSize <= 0 || cfg.PageSize > MaxPageSize {
		cfg.PageSize = MaxPageSize
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &run{cfg: cfg, conn: conn, sum: Summary{Found: map[string]int64{}}, inFlight: make(chan struct{}, maxInFlight)}
	start := time.Now()
	err := r.do(ctx)
	r.sum.Took = time.Since(start)
	if c, ok := cfg.API.(interface{ Requests() int64 }); ok {
		r.sum.Requests = c.Requests()
	}
	if err == nil && r.sum.Errors > 0 {
		err = fmt.Errorf("%w: %d errors", Incomplete, r.sum.Errors)
	}
	return r.sum, err
}

type run struct {
	cfg  Config
	conn *pgx.Conn
	// mu guards sum while appends are in flight.
	mu  sync.Mutex
	sum Summary
	// appends are the appends in flight; inFlight bounds them (a slot per
	// entry), so that memory stays flat when the database is slower than
	// the listing.
	appends  sync.WaitGroup
	inFlight chan struct{}
}

// maxInFlight is how many entries may be in flight at once: two pages'
// worth, so that one page is signed and appended while the next is
// fetched and compared, and the store's batches fill up.
const maxInFlight = 2 * MaxPageSize

// seenTable is the session's temporary table of the ids the listing
// returned: memory stays flat whatever the number of users.
const seenTable = "pg_temp.webhookd_reconcile_seen"

type page struct {
	users []json.RawMessage
	err   error
}

func (r *run) do(ctx context.Context) error {
	if _, err := r.conn.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS webhookd_reconcile_seen (clerk_id text PRIMARY KEY)`); err != nil {
		return fmt.Errorf("prepare reconciliation: %s", redact.SafeError(err))
	}
	if _, err := r.conn.Exec(ctx, `TRUNCATE `+seenTable); err != nil {
		return fmt.Errorf("prepare reconciliation: %s", redact.SafeError(err))
	}
	total, err := r.cfg.API.CountUsers(ctx)
	if err != nil {
		// Only the progress bar needs it.
		r.cfg.Logger.Warn("reconcile_count_failed", slog.String("cause", err.Error()))
	}
	// One page is fetched while the previous one is compared.
	pages := make(chan page, 1)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	go func() {
		defer close(pages)
		for offset := 0; ; offset += r.cfg.PageSize {
			users, err := r.cfg.API.ListUsers(fetchCtx, offset, r.cfg.PageSize)
			select {
			case pages <- page{users, err}:
			case <-fetchCtx.Done():
				return
			}
			if err != nil || len(users) < r.cfg.PageSize {
				return
			}
		}
	}()
	// And a page's differences are signed and appended while the next
	// pages are fetched and compared (append does not wait for them):
	// the entries of several pages fill the store's batches.
	defer r.appends.Wait()
	complete := false
	for p := range pages {
		if p.err != nil {
			r.count(&r.sum.Errors, 1)
			r.cfg.Logger.Error("reconcile_listing_failed", slog.Int64("listed", r.listed()), slog.String("cause", p.err.Error()))
			break
		}
		if err := r.compare(ctx, p.users); err != nil {
			return err
		}
		listed := r.count(&r.sum.Listed, int64(len(p.users)))
		if r.cfg.Progress != nil {
			r.cfg.Progress(listed, max(total, listed))
		}
		if len(p.users) < r.cfg.PageSize {
			complete = true
		}
	}
	stopFetch()
	// Every append ends (and counts its error) before absences are
	// considered: an append that failed makes the run incomplete.
	r.appends.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: cancelled", Incomplete)
	}
	// Absences mean something only after a listing that saw everything.
	r.sum.Complete = complete && r.sum.Errors == 0
	if !r.sum.Complete {
		r.cfg.Logger.Warn("reconcile_no_deletions", slog.String("why", "the listing did not complete without errors: absent users are not checked"))
		return nil
	}
	return r.absent(ctx)
}

// compare finds the differences of one page and appends them: one round
// trip records the page's ids and reads their rows; a second, only when
// some differ, finds which of their snapshots the ledger already holds.
func (r *run) compare(ctx context.Context, raws []json.RawMessage) error {
	type listed struct {
		raw  json.RawMessage
		user domain.User
	}
	users := make([]listed, 0, len(raws))
	ids := make([]string, 0, len(raws))
	for i, raw := range raws {
		u, err := domain.ParseSnapshotUser(raw)
		if err != nil {
			// Named by position: a user object that does not parse may
			// have no usable id, and its values are not for logs.
			r.count(&r.sum.Errors, 1)
			r.cfg.Logger.Error("reconcile_user_unreadable", slog.Int64("position", r.listed()+int64(i)), slog.String("reason", domain.ErrorReason(err)))
			continue
		}
		users = append(users, listed{raw, u})
		ids = append(ids, u.ClerkID)
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO `+seenTable+` SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, ids)
	batch.Queue(`SELECT clerk_id, clerk_updated_at FROM users WHERE clerk_id = ANY($1)`, ids)
	rows := map[string]*time.Time{}
	err := func() error {
		res := r.conn.SendBatch(ctx, batch)
		defer res.Close()
		if _, err := res.Exec(); err != nil {
			return err
		}
		q, err := res.Query()
		if err != nil {
			return err
		}
		var id string
		var at *time.Time
		_, err = pgx.ForEachRow(q, []any{&id, &at}, func() error {
			if at == nil {
				at = &time.Time{}
			}
			rows[id] = at
			return nil
		})
		return err
	}()
	if err != nil {
		return fmt.Errorf("compare with the users table: %s", redact.SafeError(err))
	}
	type difference struct {
		kind  string
		entry domain.LedgerEntry
	}
	var diffs []difference
	var keys []string
	now := r.cfg.Now()
	for _, l := range users {
		held, ok := rows[l.user.ClerkID]
		var kind string
		switch {
		case !ok:
			kind = KindMissing
		case held.Before(l.user.UpdatedAt):
			kind = KindStale
		default:
			r.count(&r.sum.Unchanged, 1)
			continue
		}
		e := domain.UserSnapshotEntry(l.raw, l.user, now)
		diffs = append(diffs, difference{kind, e})
		keys = append(keys, e.SvixID)
	}
	if len(diffs) == 0 {
		return nil
	}
	inLedger := map[string]bool{}
	q, err := r.conn.Query(ctx, `SELECT svix_id FROM ledger_events WHERE svix_id = ANY($1)`, keys)
	if err == nil {
		var key string
		_, err = pgx.ForEachRow(q, []any{&key}, func() error { inLedger[key] = true; return nil })
	}
	if err != nil {
		return fmt.Errorf("compare with the ledger: %s", redact.SafeError(err))
	}
	var appends []domain.LedgerEntry
	for _, d := range diffs {
		if inLedger[d.entry.SvixID] {
			// The snapshot is already in the ledger: a projection has
			// yet to apply it.
			r.count(&r.sum.Unchanged, 1)
			continue
		}
		r.found(d.kind, d.entry.SubjectID)
		appends = append(appends, d.entry)
	}
	r.append(ctx, appends)
	return nil
}

func (r *run) found(kind, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum.Found[kind]++
	if len(r.sum.Samples) < r.cfg.Samples {
		r.sum.Samples = append(r.sum.Samples, Difference{Kind: kind, ClerkID: id})
	}
}

// count adds n to one of the summary's counters and returns its new value.
func (r *run) count(counter *int64, n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	*counter += n
	return *counter
}

// listed is how many users were listed so far.
func (r *run) listed() int64 { return r.count(&r.sum.Listed, 0) }

// append signs and appends entries concurrently, so the store writes them
// in a few multi-row INSERTs rather than one transaction each. It returns
// once every entry is in flight (r.appends.Wait waits for them), waiting
// only while maxInFlight entries are; each entry's outcome is counted in
// the summary.
func (r *run) append(ctx context.Context, entries []domain.LedgerEntry) {
	if r.cfg.DryRun {
		return
	}
	for i := range entries {
		e := &entries[i]
		r.inFlight <- struct{}{}
		r.appends.Go(func() {
			defer func() { <-r.inFlight }()
			if r.cfg.Sign != nil {
				r.cfg.Sign(e)
			}
			res, err := r.cfg.Store.Append(ctx, *e)
			r.mu.Lock()
			defer r.mu.Unlock()
			switch {
			case err != nil:
				r.sum.Errors++
				r.cfg.Logger.Error("reconcile_append_failed", slog.String("svix_id", e.SvixID), slog.String("event_type", e.EventType),
					slog.String("clerk_id", e.SubjectID), slog.String("cause", domain.ErrorMessage(err)))
			case res.Duplicate:
				// Another run appended it first.
				r.sum.Unchanged++
			default:
				r.sum.Appended++
			}
		})
	}
}

// absent checks the users the read model holds as active and the listing
// did not return: each is soft-deleted only if Clerk answers 404 for it.
func (r *run) absent(ctx context.Context) error {
	rows, err := r.conn.Query(ctx, `
		SELECT u.clerk_id FROM users u
		WHERE u.deleted_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM `+seenTable+` s WHERE s.clerk_id = u.clerk_id)
		ORDER BY u.clerk_id`)
	if err != nil {
		return fmt.Errorf("find absent users: %s", redact.SafeError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find absent users: %s", redact.SafeError(err))
	}
	for _, id := range ids {
		raw, found, err := r.cfg.API.GetUser(ctx, id)
		if err != nil {
			r.count(&r.sum.Errors, 1)
			r.cfg.Logger.Error("reconcile_check_failed", slog.String("clerk_id", id), slog.String("cause", err.Error()))
			if ctx.Err() != nil {
				return fmt.Errorf("%w: cancelled", Incomplete)
			}
			continue
		}
		if found {
			// Created or moved while the listing ran: compare it as a
			// listed user.
			r.count(&r.sum.Listed, 1)
			if err := r.compare(ctx, []json.RawMessage{raw}); err != nil {
				return err
			}
			continue
		}
		e, err := domain.NewUserNotFoundEntry(id, r.cfg.Now())
		if err != nil {
			r.count(&r.sum.Errors, 1)
			continue
		}
		var held bool
		if err := r.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_events WHERE svix_id = $1)`, e.SvixID).Scan(&held); err != nil {
			return fmt.Errorf("find absent users: %s", redact.SafeError(err))
		}
		if held {
			r.count(&r.sum.Unchanged, 1)
			continue
		}
		r.found(KindDeleted, id)
		if r.cfg.DryRun {
			r.count(&r.sum.Deleted, 1)
			continue
		}
		r.appends.Wait()
		before := r.count(&r.sum.Appended, 0)
		r.append(ctx, []domain.LedgerEntry{e})
		r.appends.Wait()
		if r.count(&r.sum.Appended, 0) > before {
			r.count(&r.sum.Deleted, 1)
		}
	}
	return nil
}

// Lock is the reconciliation lock: a session advisory lock on conn, so
// that of several replicas (or a cron job and a replica) one reconciles at
// a time. The key is derived from the schema, as the sealer's is.
// TryLock takes it if free; Lock waits for it. Both return a release
// function.
func Lock(ctx context.Context, conn *pgx.Conn, wait bool) (held bool, release func(), err error) {
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, nil, fmt.Errorf("reconciliation lock: %s", redact.SafeError(err))
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("webhookd reconcile " + schema))
	key := int64(h.Sum64() >> 1)
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key)
		held = err == nil
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&held)
	}
	if err != nil {
		return false, nil, fmt.Errorf("reconciliation lock: %s", redact.SafeError(err))
	}
	if !held {
		return false, func() {}, nil
	}
	return true, func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	}, nil
}
