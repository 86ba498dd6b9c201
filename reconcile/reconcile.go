// Package reconcile makes the users, practices and memberships read
// models complete from Clerk's Backend API: it lists users,
// organizations and each organization's memberships, and appends to the
// ledger, as entries of source clerk-api signed by webhookd, a snapshot of
// each object the read model misses or holds at an older updated_at, and a
// not-found for each object Clerk no longer knows (only after a complete
// listing and Clerk's 404). It never writes a read model.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strings"
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

// Kinds of difference between Clerk and the practices and memberships
// read models: the users' kinds for organizations and memberships.
const (
	KindOrganizationMissing = "organization_missing"
	KindOrganizationStale   = "organization_stale"
	KindOrganizationDeleted = "organization_deleted"
	KindMembershipMissing   = "membership_missing"
	KindMembershipStale     = "membership_stale"
	KindMembershipDeleted   = "membership_deleted"
)

// Kinds lists every kind of difference.
var Kinds = []string{KindMissing, KindStale, KindDeleted,
	KindOrganizationMissing, KindOrganizationStale, KindOrganizationDeleted,
	KindMembershipMissing, KindMembershipStale, KindMembershipDeleted}

// Lister is the part of Clerk's Backend API a reconciliation reads;
// *Client is one.
type Lister interface {
	CountUsers(ctx context.Context) (int64, error)
	ListUsers(ctx context.Context, offset, limit int) ([]json.RawMessage, error)
	GetUser(ctx context.Context, id string) (raw json.RawMessage, found bool, err error)
	ListOrganizations(ctx context.Context, offset, limit int) (orgs []json.RawMessage, total int64, err error)
	GetOrganization(ctx context.Context, id string) (raw json.RawMessage, found bool, err error)
	ListMemberships(ctx context.Context, orgID string, offset, limit int) ([]json.RawMessage, error)
	FindMemberships(ctx context.Context, orgID, userID string) (memberships []json.RawMessage, orgFound bool, err error)
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
	// Progress, when set, is called after each page with the object
	// listed ("users", "organizations", "memberships"), how many were
	// listed so far and the total Clerk announced (which may change during
	// the run; for memberships, the organizations whose memberships were
	// listed and the organizations).
	Progress func(object string, listed, total int64)
	// Logger defaults to slog.Default(). It receives ids, counts and
	// error codes, never a user's profile or the secret key.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Difference is one difference found, by id only.
type Difference struct {
	Kind    string `json:"kind"`
	ClerkID string `json:"clerk_id"`
}

// Counts are what a reconciliation did with one kind of object.
type Counts struct {
	// Listed is how many objects the listing returned.
	Listed int64 `json:"listed"`
	// Appended is how many entries went into the ledger (0 in a dry run).
	Appended int64 `json:"appended"`
	// Unchanged is how many listed objects the read model already held at
	// their version, or whose snapshot the ledger already held.
	Unchanged int64 `json:"unchanged"`
	// Deleted is how many objects were soft-deleted (found gone, in a dry
	// run).
	Deleted int64 `json:"deleted"`
	// Errors counts the failures (a page, an object, a check, an append).
	Errors int64 `json:"errors"`
	// Complete is true when the listing ran to its end without an error,
	// so absences could be checked (for memberships: every organization's
	// membership listing).
	Complete bool `json:"complete"`
}

// Summary is what a reconciliation did: its users' counts (at the top,
// as before organizations were reconciled), its organizations' and its
// memberships'.
type Summary struct {
	Counts
	// Organizations are the counts of organizations (practices).
	Organizations Counts `json:"organizations"`
	// Memberships are the counts of organization memberships.
	Memberships Counts `json:"memberships"`
	// Found counts the differences found, per kind (in a dry run too).
	Found map[string]int64 `json:"found"`
	// Requests is how many requests Clerk's API received.
	Requests int64 `json:"requests"`
	// Samples are the first differences found (ids only).
	Samples []Difference `json:"samples,omitempty"`
	// Took is how long the run took.
	Took time.Duration `json:"-"`
}

// TotalErrors is the errors of every kind of object.
func (s Summary) TotalErrors() int64 { return s.Errors + s.Organizations.Errors + s.Memberships.Errors }

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
// Then it does the same for organizations (GET /v1/organizations against
// practices: clerk.organization.snapshot, and clerk.organization.not_found
// after GET /v1/organizations/{id} answered 404) and for each listed
// organization's memberships (GET /v1/organizations/{id}/memberships
// against memberships: clerk.organizationMembership.snapshot, and
// clerk.organizationMembership.not_found as absentMemberships says). An
// organization whose membership listing failed infers nothing about its
// memberships; the others' are still checked.
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
	if err == nil && r.sum.TotalErrors() > 0 {
		err = fmt.Errorf("%w: %d errors", Incomplete, r.sum.TotalErrors())
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
	// refused is set when Clerk refused the key (401, 403): the run
	// stops after the listing that met it.
	refused bool
}

// maxInFlight is how many entries may be in flight at once: two pages'
// worth, so that one page is signed and appended while the next is
// fetched and compared, and the store's batches fill up.
const maxInFlight = 2 * MaxPageSize

// The session's temporary tables of the ids the listings returned (and
// of the organizations whose membership listing completed): memory stays
// flat whatever the number of objects.
const (
	seenTable            = "pg_temp.webhookd_reconcile_seen"
	seenOrgsTable        = "pg_temp.webhookd_reconcile_seen_orgs"
	seenMembershipsTable = "pg_temp.webhookd_reconcile_seen_memberships"
	orgsDoneTable        = "pg_temp.webhookd_reconcile_orgs_done"
)

// object is one kind of Clerk object reconciled against a read model.
type object struct {
	// name is the Progress name; singular names it in log messages.
	name, singular string
	// table and column hold the read model's rows by Clerk id; seen is
	// the temporary table of the ids listed.
	table, column, seen     string
	missing, stale, deleted string
	// parse reads one object of the API and returns its id, its
	// updated_at and its snapshot entry.
	parse func(raw json.RawMessage, now time.Time) (id string, updatedAt time.Time, entry domain.LedgerEntry, err error)
}

var (
	users = object{name: "users", singular: "user", table: "users", column: "clerk_id", seen: seenTable,
		missing: KindMissing, stale: KindStale, deleted: KindDeleted,
		parse: func(raw json.RawMessage, now time.Time) (string, time.Time, domain.LedgerEntry, error) {
			u, err := domain.ParseSnapshotUser(raw)
			if err != nil {
				return "", time.Time{}, domain.LedgerEntry{}, err
			}
			return u.ClerkID, u.UpdatedAt, domain.UserSnapshotEntry(raw, u, now), nil
		}}
	organizations = object{name: "organizations", singular: "organization", table: "practices", column: "clerk_org_id", seen: seenOrgsTable,
		missing: KindOrganizationMissing, stale: KindOrganizationStale, deleted: KindOrganizationDeleted,
		parse: func(raw json.RawMessage, now time.Time) (string, time.Time, domain.LedgerEntry, error) {
			o, err := domain.ParseSnapshotOrganization(raw)
			if err != nil {
				return "", time.Time{}, domain.LedgerEntry{}, err
			}
			return o.ClerkID, o.UpdatedAt, domain.OrganizationSnapshotEntry(raw, o, now), nil
		}}
	memberships = object{name: "memberships", singular: "membership", table: "memberships", column: "clerk_membership_id", seen: seenMembershipsTable,
		missing: KindMembershipMissing, stale: KindMembershipStale, deleted: KindMembershipDeleted,
		parse: func(raw json.RawMessage, now time.Time) (string, time.Time, domain.LedgerEntry, error) {
			m, err := domain.ParseSnapshotMembership(raw)
			if err != nil {
				return "", time.Time{}, domain.LedgerEntry{}, err
			}
			return m.ClerkID, m.UpdatedAt, domain.MembershipSnapshotEntry(raw, m, now), nil
		}}
)

// counts are the summary's counts of o.
func (r *run) counts(o *object) *Counts {
	switch o.name {
	case organizations.name:
		return &r.sum.Organizations
	case memberships.name:
		return &r.sum.Memberships
	}
	return &r.sum.Counts
}

type page struct {
	objects []json.RawMessage
	total   int64
	err     error
}

func (r *run) do(ctx context.Context) error {
	for _, table := range []string{seenTable, seenOrgsTable, seenMembershipsTable, orgsDoneTable} {
		name := strings.TrimPrefix(table, "pg_temp.")
		if _, err := r.conn.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+name+` (clerk_id text PRIMARY KEY)`); err != nil {
			return fmt.Errorf("prepare reconciliation: %s", redact.SafeError(err))
		}
		if _, err := r.conn.Exec(ctx, `TRUNCATE `+table); err != nil {
			return fmt.Errorf("prepare reconciliation: %s", redact.SafeError(err))
		}
	}
	total, err := r.cfg.API.CountUsers(ctx)
	if err != nil {
		// Only the progress bar needs it.
		r.cfg.Logger.Warn("reconcile_count_failed", slog.String("cause", err.Error()))
	}
	err = r.listAll(ctx, &users, func(ctx context.Context, offset int) ([]json.RawMessage, int64, error) {
		objects, err := r.cfg.API.ListUsers(ctx, offset, r.cfg.PageSize)
		return objects, total, err
	}, func(ctx context.Context, id string) (json.RawMessage, bool, error) { return r.cfg.API.GetUser(ctx, id) },
		domain.NewUserNotFoundEntry)
	if err != nil || r.refused {
		return err
	}
	err = r.listAll(ctx, &organizations, func(ctx context.Context, offset int) ([]json.RawMessage, int64, error) {
		return r.cfg.API.ListOrganizations(ctx, offset, r.cfg.PageSize)
	}, func(ctx context.Context, id string) (json.RawMessage, bool, error) {
		return r.cfg.API.GetOrganization(ctx, id)
	},
		domain.NewOrganizationNotFoundEntry)
	if err != nil || r.refused {
		return err
	}
	return r.memberships(ctx)
}

// listAll pages through one kind of object (list), compares each page
// with the read model and appends the differences; then, only when the
// listing completed without any error, it checks each object the read
// model holds as active that the listing did not return (get) and
// appends notFound for those Clerk answers 404 for.
func (r *run) listAll(ctx context.Context, o *object, list func(ctx context.Context, offset int) ([]json.RawMessage, int64, error),
	get func(ctx context.Context, id string) (json.RawMessage, bool, error), notFound func(string, time.Time) (domain.LedgerEntry, error)) error {
	c := r.counts(o)
	// One page is fetched while the previous one is compared.
	pages := make(chan page, 1)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	go func() {
		defer close(pages)
		for offset := 0; ; offset += r.cfg.PageSize {
			objects, total, err := list(fetchCtx, offset)
			select {
			case pages <- page{objects, total, err}:
			case <-fetchCtx.Done():
				return
			}
			if err != nil || len(objects) < r.cfg.PageSize {
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
			r.count(&c.Errors, 1)
			r.refused = refused(p.err)
			r.cfg.Logger.Error("reconcile_listing_failed", slog.String("object", o.name), slog.Int64("listed", r.count(&c.Listed, 0)), slog.String("cause", p.err.Error()))
			break
		}
		if _, err := r.compare(ctx, o, p.objects); err != nil {
			return err
		}
		listed := r.count(&c.Listed, int64(len(p.objects)))
		if r.cfg.Progress != nil {
			r.cfg.Progress(o.name, listed, max(p.total, listed))
		}
		if len(p.objects) < r.cfg.PageSize {
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
	c.Complete = complete && r.count(&c.Errors, 0) == 0
	if !c.Complete {
		r.cfg.Logger.Warn("reconcile_no_deletions", slog.String("object", o.name), slog.String("why", "the listing did not complete without errors: absent "+o.name+" are not checked"))
		return nil
	}
	return r.absent(ctx, o, get, notFound)
}

// refused reports whether err is Clerk refusing the key (401, 403):
// nothing else the run would ask can succeed.
func refused(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden)
}

// compare finds the differences of one page and appends them: one round
// trip records the page's ids and reads their rows; a second, only when
// some differ, finds which of their snapshots the ledger already holds.
// It returns the ids it read.
func (r *run) compare(ctx context.Context, o *object, raws []json.RawMessage) ([]string, error) {
	c := r.counts(o)
	type listed struct {
		id        string
		updatedAt time.Time
		entry     domain.LedgerEntry
	}
	objects := make([]listed, 0, len(raws))
	ids := make([]string, 0, len(raws))
	now := r.cfg.Now()
	for i, raw := range raws {
		id, at, e, err := o.parse(raw, now)
		if err != nil {
			// Named by position: an object that does not parse may have
			// no usable id, and its values are not for logs.
			r.count(&c.Errors, 1)
			r.cfg.Logger.Error("reconcile_"+o.singular+"_unreadable", slog.Int64("position", r.count(&c.Listed, 0)+int64(i)), slog.String("reason", domain.ErrorReason(err)))
			continue
		}
		objects = append(objects, listed{id, at, e})
		ids = append(ids, id)
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO `+o.seen+` SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, ids)
	batch.Queue(`SELECT `+o.column+`, clerk_updated_at FROM `+o.table+` WHERE `+o.column+` = ANY($1)`, ids)
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
		return nil, fmt.Errorf("compare with the %s table: %s", o.table, redact.SafeError(err))
	}
	type difference struct {
		kind  string
		entry domain.LedgerEntry
	}
	var diffs []difference
	var keys []string
	for _, l := range objects {
		held, ok := rows[l.id]
		var kind string
		switch {
		case !ok:
			kind = o.missing
		case held.Before(l.updatedAt):
			kind = o.stale
		default:
			r.count(&c.Unchanged, 1)
			continue
		}
		diffs = append(diffs, difference{kind, l.entry})
		keys = append(keys, l.entry.SvixID)
	}
	if len(diffs) == 0 {
		return ids, nil
	}
	inLedger := map[string]bool{}
	q, err := r.conn.Query(ctx, `SELECT svix_id FROM ledger_events WHERE svix_id = ANY($1)`, keys)
	if err == nil {
		var key string
		_, err = pgx.ForEachRow(q, []any{&key}, func() error { inLedger[key] = true; return nil })
	}
	if err != nil {
		return nil, fmt.Errorf("compare with the ledger: %s", redact.SafeError(err))
	}
	var appends []domain.LedgerEntry
	for _, d := range diffs {
		if inLedger[d.entry.SvixID] {
			// The snapshot is already in the ledger: a projection has
			// yet to apply it.
			r.count(&c.Unchanged, 1)
			continue
		}
		r.found(d.kind, d.entry.SubjectID)
		appends = append(appends, d.entry)
	}
	r.append(ctx, c, appends)
	return ids, nil
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

// append signs and appends entries concurrently, so the store writes them
// in a few multi-row INSERTs rather than one transaction each. It returns
// once every entry is in flight (r.appends.Wait waits for them), waiting
// only while maxInFlight entries are; each entry's outcome is counted in
// c.
func (r *run) append(ctx context.Context, c *Counts, entries []domain.LedgerEntry) {
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
				c.Errors++
				r.cfg.Logger.Error("reconcile_append_failed", slog.String("svix_id", e.SvixID), slog.String("event_type", e.EventType),
					slog.String("clerk_id", e.SubjectID), slog.String("cause", domain.ErrorMessage(err)))
			case res.Duplicate:
				// Another run appended it first.
				c.Unchanged++
			default:
				c.Appended++
			}
		})
	}
}

// absent checks the objects the read model holds as active and the
// listing did not return: each is soft-deleted only if Clerk answers 404
// for it.
func (r *run) absent(ctx context.Context, o *object, get func(ctx context.Context, id string) (json.RawMessage, bool, error),
	notFound func(string, time.Time) (domain.LedgerEntry, error)) error {
	c := r.counts(o)
	rows, err := r.conn.Query(ctx, `
		SELECT t.`+o.column+` FROM `+o.table+` t
		WHERE t.deleted_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM `+o.seen+` s WHERE s.clerk_id = t.`+o.column+`)
		ORDER BY t.`+o.column)
	if err != nil {
		return fmt.Errorf("find absent %s: %s", o.name, redact.SafeError(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find absent %s: %s", o.name, redact.SafeError(err))
	}
	for _, id := range ids {
		raw, found, err := get(ctx, id)
		if err != nil {
			r.count(&c.Errors, 1)
			r.cfg.Logger.Error("reconcile_check_failed", slog.String("clerk_id", id), slog.String("cause", err.Error()))
			if ctx.Err() != nil {
				return fmt.Errorf("%w: cancelled", Incomplete)
			}
			continue
		}
		if found {
			// Created or moved while the listing ran: compare it as a
			// listed object.
			r.count(&c.Listed, 1)
			if _, err := r.compare(ctx, o, []json.RawMessage{raw}); err != nil {
				return err
			}
			continue
		}
		if err := r.gone(ctx, o, id, notFound); err != nil {
			return err
		}
	}
	return nil
}

// gone appends the not-found of id, which Clerk answered 404 for, unless
// the ledger holds it already.
func (r *run) gone(ctx context.Context, o *object, id string, notFound func(string, time.Time) (domain.LedgerEntry, error)) error {
	c := r.counts(o)
	e, err := notFound(id, r.cfg.Now())
	if err != nil {
		r.count(&c.Errors, 1)
		return nil
	}
	var held bool
	if err := r.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_events WHERE svix_id = $1)`, e.SvixID).Scan(&held); err != nil {
		return fmt.Errorf("find absent %s: %s", o.name, redact.SafeError(err))
	}
	if held {
		r.count(&c.Unchanged, 1)
		return nil
	}
	r.found(o.deleted, id)
	if r.cfg.DryRun {
		r.count(&c.Deleted, 1)
		return nil
	}
	r.appends.Wait()
	before := r.count(&c.Appended, 0)
	r.append(ctx, c, []domain.LedgerEntry{e})
	r.appends.Wait()
	if r.count(&c.Appended, 0) > before {
		r.count(&c.Deleted, 1)
	}
	return nil
}

// orgPage is a page of one organization's memberships.
type orgPage struct {
	orgID   string
	objects []json.RawMessage
	// last is the organization's last page; err ends its listing.
	last bool
	err  error
}

// memberships lists the memberships of every organization listed (and
// found on its 404 check), compares them with the memberships read model
// and appends the differences. An organization whose membership listing
// fails (a 5xx past the retries, a membership that does not parse) is
// not marked done: no absence is inferred among its memberships, and the
// others' are still checked (see absentMemberships).
func (r *run) memberships(ctx context.Context) error {
	c := &r.sum.Memberships
	rows, err := r.conn.Query(ctx, `SELECT clerk_id FROM `+seenOrgsTable+` ORDER BY clerk_id`)
	if err != nil {
		return fmt.Errorf("list organizations: %s", redact.SafeError(err))
	}
	orgIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list organizations: %s", redact.SafeError(err))
	}
	pages := make(chan orgPage, 4)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	go func() {
		defer close(pages)
		for _, org := range orgIDs {
			for offset := 0; ; offset += r.cfg.PageSize {
				objects, err := r.cfg.API.ListMemberships(fetchCtx, org, offset, r.cfg.PageSize)
				last := err != nil || len(objects) < r.cfg.PageSize
				select {
				case pages <- orgPage{org, objects, last, err}:
				case <-fetchCtx.Done():
					return
				}
				if last {
					break
				}
			}
		}
	}()
	defer r.appends.Wait()
	var done, orgs int64
	failed := map[string]bool{}
	for p := range pages {
		if p.err != nil {
			r.count(&c.Errors, 1)
			failed[p.orgID] = true
			r.cfg.Logger.Error("reconcile_listing_failed", slog.String("object", "memberships"), slog.String("org_id", p.orgID), slog.String("cause", p.err.Error()))
			if refused(p.err) {
				r.refused = true
				break
			}
		} else {
			before := r.count(&c.Errors, 0)
			if _, err := r.compare(ctx, &memberships, p.objects); err != nil {
				return err
			}
			if r.count(&c.Errors, 0) > before {
				failed[p.orgID] = true
			}
			r.count(&c.Listed, int64(len(p.objects)))
		}
		if !p.last {
			continue
		}
		orgs++
		if !failed[p.orgID] {
			// The organization's memberships are all in the seen table.
			if _, err := r.conn.Exec(ctx, `INSERT INTO `+orgsDoneTable+` VALUES ($1) ON CONFLICT DO NOTHING`, p.orgID); err != nil {
				return fmt.Errorf("compare with the memberships table: %s", redact.SafeError(err))
			}
			done++
		}
		delete(failed, p.orgID)
		if r.cfg.Progress != nil {
			r.cfg.Progress("memberships", orgs, int64(len(orgIDs)))
		}
	}
	stopFetch()
	r.appends.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: cancelled", Incomplete)
	}
	c.Complete = r.sum.Organizations.Complete && done == int64(len(orgIDs)) && r.count(&c.Errors, 0) == 0
	if done < int64(len(orgIDs)) {
		r.cfg.Logger.Warn("reconcile_no_deletions", slog.String("object", "memberships"), slog.Int64("organizations", int64(len(orgIDs))-done),
			slog.String("why", "the membership listing of these organizations did not complete without errors: their absent memberships are not checked"))
	}
	if r.refused {
		return nil
	}
	return r.absentMemberships(ctx)
}

// absentMemberships checks the memberships the read model holds as
// active that no listing returned, of an organization whose membership
// listing completed, or (after a complete organization listing) of an
// organization that was not listed. Clerk's Backend API has no GET for
// one membership, which it names by organization and user: the check is
// GET /v1/organizations/{org_id}/memberships?user_id={user_id}. A 404
// (resource_not_found: the organization is gone) or an answer without
// this membership means it is gone; an answer with it means the listing
// missed it (it is compared as listed).
func (r *run) absentMemberships(ctx context.Context) error {
	c := &r.sum.Memberships
	rows, err := r.conn.Query(ctx, `
		SELECT m.clerk_membership_id, coalesce(m.clerk_org_id, ''), coalesce(m.clerk_user_id, '') FROM memberships m
		WHERE m.deleted_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM `+seenMembershipsTable+` s WHERE s.clerk_id = m.clerk_membership_id)
		  AND (EXISTS (SELECT 1 FROM `+orgsDoneTable+` d WHERE d.clerk_id = m.clerk_org_id)
		       OR ($1 AND NOT EXISTS (SELECT 1 FROM `+seenOrgsTable+` o WHERE o.clerk_id = m.clerk_org_id)))
		ORDER BY m.clerk_membership_id`, r.sum.Organizations.Complete)
	if err != nil {
		return fmt.Errorf("find absent memberships: %s", redact.SafeError(err))
	}
	type held struct{ id, org, user string }
	var absent []held
	var h held
	if _, err := pgx.ForEachRow(rows, []any{&h.id, &h.org, &h.user}, func() error { absent = append(absent, h); return nil }); err != nil {
		return fmt.Errorf("find absent memberships: %s", redact.SafeError(err))
	}
	for _, m := range absent {
		if m.org == "" || m.user == "" {
			// Nothing to ask Clerk with: left as it is.
			r.cfg.Logger.Warn("reconcile_check_skipped", slog.String("clerk_id", m.id), slog.String("why", "the membership row names no organization or no user"))
			continue
		}
		found, orgFound, err := r.cfg.API.FindMemberships(ctx, m.org, m.user)
		if err != nil {
			r.count(&c.Errors, 1)
			r.cfg.Logger.Error("reconcile_check_failed", slog.String("clerk_id", m.id), slog.String("cause", err.Error()))
			if ctx.Err() != nil {
				return fmt.Errorf("%w: cancelled", Incomplete)
			}
			continue
		}
		stillThere := false
		if orgFound && len(found) > 0 {
			r.count(&c.Listed, int64(len(found)))
			ids, err := r.compare(ctx, &memberships, found)
			if err != nil {
				return err
			}
			stillThere = slices.Contains(ids, m.id)
		}
		if stillThere {
			continue
		}
		if err := r.gone(ctx, &memberships, m.id, domain.NewMembershipNotFoundEntry); err != nil {
			return err
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
