package reconcile_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/webhookd/webhookd/internal/testlog"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
	"github.com/webhookd/webhookd/reconcile"
)

const secretKey = "sk_test_reconcile_0123456789"

// key signs reconciliation's entries, as WEBHOOKD_SIGNING_KEY does.
var key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

// base is the Clerk time the test users were created around.
var base = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

type env struct {
	t      *testing.T
	db     *testdb.DB
	store  *eventstore.Store
	api    *clerkfake.API
	srv    *httptest.Server
	logs   *syncBuffer
	logger *slog.Logger
	// retried records the retries the client made (status, pause).
	mu      sync.Mutex
	retried []string
}

type syncBuffer = testlog.Buffer

func setup(t *testing.T) *env {
	t.Helper()
	db := testdb.New(t)
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	api := clerkfake.NewAPI(secretKey)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	var w io.Writer = logs
	if os.Getenv("WEBHOOKD_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	return &env{t: t, db: db, store: store, api: api, srv: srv, logs: logs, logger: slog.New(slog.NewJSONHandler(w, nil))}
}

// user is the Clerk user object of seed n at version v (updated_at is
// base + n minutes + v seconds).
func user(t testing.TB, n, v int) []byte {
	t.Helper()
	b, err := clerkfake.APIUser(clerkfake.Options{Seed: int64(n), PrimaryEmail: 1,
		Time: base.Add(time.Duration(n)*time.Minute + time.Duration(v)*time.Second), CreatedAt: base.Add(time.Duration(n) * time.Minute)})
	require.NoError(t, err)
	return b
}

func idOf(t testing.TB, raw []byte) string {
	t.Helper()
	u, err := domain.ParseUser(raw, time.Time{})
	require.NoError(t, err)
	return u.ClerkID
}

// addClerk puts users 1..n at version 0 into the fake Clerk.
func (v *env) addClerk(from, to int) {
	for n := from; n <= to; n++ {
		require.NoError(v.t, v.api.Put(user(v.t, n, 0)))
	}
}

func (v *env) client(cfg reconcile.ClientConfig) *reconcile.Client {
	v.t.Helper()
	cfg.SecretKey, cfg.APIURL = secretKey, v.srv.URL
	if cfg.Budget == 0 {
		cfg.Budget = -1
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	cfg.Retried = func(status int, pause time.Duration) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.retried = append(v.retried, fmt.Sprintf("%d %s", status, pause))
	}
	c, err := reconcile.NewClient(cfg)
	require.NoError(v.t, err)
	return c
}

// run runs one reconciliation on a connection of its own.
func (v *env) run(c *reconcile.Client, dryRun bool) (reconcile.Summary, error) {
	v.t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, v.db.Pool.Config().ConnConfig.Copy())
	require.NoError(v.t, err)
	defer conn.Close(ctx)
	return reconcile.Run(ctx, conn, reconcile.Config{API: c, Pool: v.db.Pool, Store: v.store, DryRun: dryRun, Logger: v.logger,
		Sign: func(e *domain.LedgerEntry) { seal.SignInternalEntry(key, e) }})
}

// deliver appends a Clerk webhook for user object raw (user.created or
// user.updated), as the ingress stores it.
func (v *env) deliver(typ string, raw []byte, at time.Time) {
	v.t.Helper()
	var data map[string]any
	require.NoError(v.t, json.Unmarshal(raw, &data))
	body, err := json.Marshal(map[string]any{"data": data, "instance_id": "ins_test", "object": "event", "timestamp": at.UnixMilli(), "type": typ})
	require.NoError(v.t, err)
	env, err := domain.ParseEnvelope(body)
	require.NoError(v.t, err)
	_, err = v.store.Append(context.Background(), domain.LedgerEntry{
		SvixID: clerkfake.NewMsgID(), SvixTimestamp: at.Truncate(time.Second), Signature: "v1,dGVzdA==", Source: domain.SourceClerk,
		EventType: typ, SubjectID: env.SubjectID, InstanceID: env.InstanceID, EventTime: env.Time, TimestampUnit: env.TimestampUnit,
		ReceivedAt: at, Payload: body,
	})
	require.NoError(v.t, err)
}

// deleteWebhook appends Clerk's user.deleted for id.
func (v *env) deleteWebhook(id string, at time.Time) {
	v.t.Helper()
	body := clerkfake.MustBuild("user.deleted", clerkfake.Options{ID: id, Time: at})
	_, err := v.store.Append(context.Background(), domain.LedgerEntry{
		SvixID: clerkfake.NewMsgID(), SvixTimestamp: at.Truncate(time.Second), Signature: "v1,dGVzdA==", Source: domain.SourceClerk,
		EventType: "user.deleted", SubjectID: id, InstanceID: clerkfake.DefaultInstanceID, EventTime: at.Truncate(time.Millisecond), TimestampUnit: "ms",
		ReceivedAt: at, Payload: body,
	})
	require.NoError(v.t, err)
}

// project applies the ledger to the users table (the live projection,
// origin checked with webhookd's key) and waits until it caught up.
func (v *env) project() {
	v.t.Helper()
	origin, err := seal.NewOriginVerifier(nil, key.Public().(ed25519.PublicKey))
	require.NoError(v.t, err)
	check := func(e domain.LedgerEntry) error {
		if e.Source == domain.SourceClerk {
			return nil // the fake deliveries are not Svix-signed
		}
		return origin.Verify(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: v.db.Pool, Projections: []projections.Projection{projections.WithOrigin(projections.Users, check)},
		Logger: v.logger, PollInterval: 5 * time.Millisecond, BatchSize: 1000})
	require.NoError(v.t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(v.t, func() bool {
		lag, err := projections.MeasureLag(context.Background(), v.db.Pool, "users", time.Now())
		return err == nil && lag.Events == 0
	}, 60*time.Second, 5*time.Millisecond)
}

type row struct {
	UpdatedAt time.Time
	Email     string
	Deleted   bool
}

// users returns the users table.
func (v *env) users() map[string]row {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT clerk_id, clerk_updated_at, coalesce(email, ''), deleted_at IS NOT NULL FROM users`)
	require.NoError(v.t, err)
	out := map[string]row{}
	var id string
	var r row
	var at *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at, &r.Email, &r.Deleted}, func() error {
		r.UpdatedAt = time.Time{}
		if at != nil {
			r.UpdatedAt = at.UTC()
		}
		out[id] = r
		return nil
	})
	require.NoError(v.t, err)
	return out
}

// clerk returns the fake Clerk's users as the users table should hold
// them.
func (v *env) clerk() map[string]row {
	v.t.Helper()
	out := map[string]row{}
	for _, id := range v.api.IDs() {
		u, err := domain.ParseUser(v.api.User(id), time.Time{})
		require.NoError(v.t, err)
		out[id] = row{UpdatedAt: u.UpdatedAt.UTC(), Email: u.Email}
	}
	return out
}

func (v *env) ledgerCount(source string) int {
	v.t.Helper()
	var n int
	require.NoError(v.t, v.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events WHERE source = $1`, source).Scan(&n))
	return n
}

// requireActiveEqualsClerk checks that the users table's active users are
// exactly Clerk's, at Clerk's version, but for the users named in
// newerHere (whose webhook said more than the API).
func (v *env) requireActiveEqualsClerk(newerHere ...string) {
	v.t.Helper()
	active := map[string]row{}
	for id, r := range v.users() {
		if !r.Deleted {
			active[id] = r
		}
	}
	want := v.clerk()
	for _, id := range newerHere {
		require.True(v.t, active[id].UpdatedAt.After(want[id].UpdatedAt))
		delete(want, id)
		delete(active, id)
	}
	require.Equal(v.t, want, active)
}

func TestTenThousandUsersOverManyPagesThenNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 10_000)
	c := v.client(reconcile.ClientConfig{})
	sum, err := v.run(c, false)
	require.NoError(t, err)
	require.Equal(t, int64(10_000), sum.Listed)
	require.Equal(t, int64(10_000), sum.Appended)
	require.Equal(t, map[string]int64{reconcile.KindMissing: 10_000}, sum.Found)
	require.True(t, sum.Complete)
	// 21 pages of 500 (the last one empty), one count and the (empty)
	// organization listing.
	require.Equal(t, int64(23), sum.Requests)
	require.Equal(t, 10_000, v.ledgerCount(domain.SourceClerkAPI))
	v.project()
	v.requireActiveEqualsClerk()

	// Nothing changed in Clerk: nothing appended.
	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, reconcile.Summary{Counts: reconcile.Counts{Listed: 10_000, Unchanged: 10_000, Complete: true},
		Organizations: reconcile.Counts{Complete: true}, Memberships: reconcile.Counts{Complete: true},
		Found: map[string]int64{}, Requests: 23}, withoutTook(sum))
	require.Equal(t, 10_000, v.ledgerCount(domain.SourceClerkAPI))
}

func withoutTook(s reconcile.Summary) reconcile.Summary {
	s.Took = 0
	return s
}

// The read model holds users 1..6 from webhooks; Clerk holds 1..4 (2 newer,
// 3 older than the table), 7 and 8, has deleted 5 and 6, and 6's
// user.deleted webhook arrived.
func TestMissingStaleNewerAndDeletedUsers(t *testing.T) {
	t.Parallel()
	v := setup(t)
	for n := 1; n <= 6; n++ {
		v.deliver("user.created", user(t, n, 0), base)
	}
	v.deliver("user.updated", user(t, 3, 30), base)
	id5, id6 := idOf(t, user(t, 5, 0)), idOf(t, user(t, 6, 0))
	v.deleteWebhook(id6, base.Add(time.Hour))
	v.project()

	v.addClerk(1, 4)
	require.NoError(t, v.api.Put(user(t, 2, 10))) // newer in Clerk: stale in the table
	require.NoError(t, v.api.Put(user(t, 3, 20))) // older in Clerk than the table's 30
	v.addClerk(7, 8)

	// A dry run finds it all and appends nothing.
	before := v.ledgerCount(domain.SourceClerkAPI)
	sum, err := v.run(v.client(reconcile.ClientConfig{}), true)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{reconcile.KindMissing: 2, reconcile.KindStale: 1, reconcile.KindDeleted: 1}, sum.Found)
	require.Equal(t, []reconcile.Difference{
		{Kind: reconcile.KindStale, ClerkID: idOf(t, user(t, 2, 0))},
		{Kind: reconcile.KindMissing, ClerkID: idOf(t, user(t, 7, 0))},
		{Kind: reconcile.KindMissing, ClerkID: idOf(t, user(t, 8, 0))},
		{Kind: reconcile.KindDeleted, ClerkID: id5},
	}, sum.Samples)
	require.Zero(t, sum.Appended)
	require.Equal(t, int64(1), sum.Deleted)
	require.Equal(t, before, v.ledgerCount(domain.SourceClerkAPI), "a dry run appends nothing")

	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, int64(6), sum.Listed)
	require.Equal(t, int64(4), sum.Appended, "users 2, 7, 8 and the deletion of 5")
	require.Equal(t, int64(3), sum.Unchanged, "users 1, 3 (the table's is newer) and 4")
	require.Equal(t, int64(1), sum.Deleted)
	v.project()
	v.requireActiveEqualsClerk(idOf(t, user(t, 3, 0)))
	got := v.users()
	require.True(t, got[id5].Deleted)
	require.True(t, got[id6].Deleted)
	require.Equal(t, base.Add(3*time.Minute+30*time.Second), got[idOf(t, user(t, 3, 0))].UpdatedAt, "an older snapshot changes nothing")

	var reason, source string
	require.NoError(t, v.db.Pool.QueryRow(context.Background(), `SELECT source, convert_from(payload, 'UTF8')::jsonb #>> '{data,reason}' FROM ledger_events WHERE event_type = 'clerk.user.not_found' AND subject_id = $1`, id5).Scan(&source, &reason))
	require.Equal(t, "clerk-api", source)
	require.Equal(t, domain.UserNotFoundReason, reason)

	// The snapshot is the user object as the API returned it.
	var payload []byte
	require.NoError(t, v.db.Pool.QueryRow(context.Background(), `SELECT payload FROM ledger_events WHERE event_type = 'clerk.user.snapshot' AND subject_id = $1`, idOf(t, user(t, 7, 0))).Scan(&payload))
	env, err := domain.ParseEnvelope(payload)
	require.NoError(t, err)
	require.Equal(t, string(user(t, 7, 0)), string(env.Data))

	// Again: nothing to do.
	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Zero(t, sum.Appended)
	require.Empty(t, sum.Found)

	// A rebuild reproduces the table.
	reports, err := projections.RebuildAll(context.Background(), projections.RebuildConfig{Pool: v.db.Pool, Logger: v.logger}, []projections.ReadModel{projections.Users}, true)
	require.NoError(t, err)
	require.True(t, reports[0].Equal, "a rebuild from the ledger gives the live users table")
}

// A user the listing missed (it moved between pages) but that Clerk still
// has is not deleted: the 404 check finds it.
func TestAbsentFromTheListingButFoundIsNotDeleted(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 3)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.project()
	hidden := idOf(t, user(t, 2, 0))
	// The listing leaves user 2 out; GET /v1/users/{id} has it.
	v.api.Delete(hidden)
	raw := user(t, 2, 5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/users/"+hidden {
			_, _ = w.Write(raw)
			return
		}
		v.api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := reconcile.NewClient(reconcile.ClientConfig{SecretKey: secretKey, APIURL: srv.URL, Budget: -1})
	require.NoError(t, err)
	sum, err := v.run(c, false)
	require.NoError(t, err)
	require.Zero(t, sum.Deleted)
	require.Equal(t, map[string]int64{reconcile.KindStale: 1}, sum.Found, "found by id, and newer")
	v.project()
	require.False(t, v.users()[hidden].Deleted)
	require.Equal(t, base.Add(2*time.Minute+5*time.Second), v.users()[hidden].UpdatedAt)
}

// A 404 that is not Clerk's resource_not_found (a proxy's page, a wrong
// URL) deletes nothing.
func TestA404WithoutClerksErrorDeletesNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 2)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.project()
	gone := idOf(t, user(t, 1, 0))
	v.api.Delete(gone)
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		if r.URL.Path == "/v1/users/"+gone {
			return http.StatusNotFound, nil
		}
		return 0, nil
	}
	sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.Zero(t, sum.Deleted)
	require.Equal(t, int64(1), sum.Errors)
	require.Contains(t, v.logs.String(), `"msg":"reconcile_check_failed","clerk_id":"`+gone+`","cause":"GET /v1/users/{id} answered 404 (fault)"`)
	v.project()
	require.False(t, v.users()[gone].Deleted)
}

func TestRetryAfterMidListing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 1200)
	var once sync.Once
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		status := 0
		if r.URL.Path == "/v1/users" && r.URL.Query().Get("offset") == "500" {
			once.Do(func() { status = http.StatusTooManyRequests })
		}
		return status, http.Header{"Retry-After": {"1"}}
	}
	sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, int64(1200), sum.Appended)
	require.True(t, sum.Complete)
	require.Equal(t, []string{"429 1s"}, v.retried, "waited what Retry-After said")
	require.Equal(t, int64(1+3+1+1), sum.Requests, "count, three pages, the retry and the organization listing")
}

// A listing that fails half way (a 5xx that outlasts the retries) infers
// nothing about absent users, keeps what it appended and exits incomplete.
func TestA5xxEndsTheListingAndNothingIsDeleted(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 1500)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.project()
	// Clerk deletes the last 500; page 2 then fails for good.
	for n := 1001; n <= 1500; n++ {
		v.api.Delete(idOf(t, user(t, n, 0)))
	}
	require.NoError(t, v.api.Put(user(t, 1, 9)))
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		if r.URL.Query().Get("offset") == "500" {
			return http.StatusServiceUnavailable, nil
		}
		return 0, nil
	}
	sum, err := v.run(v.client(reconcile.ClientConfig{MaxAttempts: 3}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.False(t, sum.Complete)
	require.Equal(t, int64(500), sum.Listed)
	require.Equal(t, int64(1), sum.Appended, "the first page's newer user 1")
	require.Zero(t, sum.Deleted)
	require.Equal(t, []string{"503", "503"}, statuses(v.retried))
	require.Contains(t, v.logs.String(), `"msg":"reconcile_listing_failed","object":"users","listed":500,"cause":"GET /v1/users answered 503 after 3 attempts"`)
	v.project()
	for id, r := range v.users() {
		require.False(t, r.Deleted, id)
	}
}

func statuses(retried []string) []string {
	out := make([]string, len(retried))
	for i, r := range retried {
		fmt.Sscan(r, &out[i])
	}
	return out
}

// Two runs at once (two replicas, no lock between them) append each entry
// once, with no conflicting bodies.
func TestConcurrentRunsAppendEachOnce(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 2000)
	var wg sync.WaitGroup
	sums := make([]reconcile.Summary, 2)
	for i := range sums {
		wg.Go(func() {
			var err error
			sums[i], err = v.run(v.client(reconcile.ClientConfig{}), false)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int64(2000), sums[0].Appended+sums[1].Appended)
	require.Equal(t, 2000, v.ledgerCount(domain.SourceClerkAPI))
	var conflicts int
	require.NoError(t, v.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_conflicts`).Scan(&conflicts))
	require.Zero(t, conflicts)
	v.project()
	v.requireActiveEqualsClerk()
}

// A snapshot and a newer webhook for the same user converge on the
// webhook's version in either ledger order.
func TestSnapshotRacingANewerWebhookConverges(t *testing.T) {
	t.Parallel()
	for _, webhookFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("webhook first ", webhookFirst), func(t *testing.T) {
			t.Parallel()
			v := setup(t)
			v.addClerk(1, 1)
			newer := user(t, 1, 40)
			if webhookFirst {
				v.deliver("user.updated", newer, base)
			}
			// The listing read version 0 just before Clerk's webhook for
			// version 40 arrived.
			sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
			require.NoError(t, err)
			if !webhookFirst {
				v.deliver("user.updated", newer, base)
			}
			require.Equal(t, int64(1), sum.Appended)
			v.project()
			require.Equal(t, base.Add(time.Minute+40*time.Second), v.users()[idOf(t, newer)].UpdatedAt)
		})
	}
}

// The secret key and Clerk's error messages never reach logs or errors;
// a wrong key is one clear error.
func TestWrongKeyIsAClearErrorWithoutTheKey(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 2)
	c, err := reconcile.NewClient(reconcile.ClientConfig{SecretKey: "sk_test_wrong_secret_value", APIURL: v.srv.URL, Budget: -1})
	require.NoError(t, err)
	sum, err := v.run(c, false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.False(t, sum.Complete)
	require.Contains(t, v.logs.String(), `"cause":"GET /v1/users answered 401 (authentication_invalid)"`)
	require.NotContains(t, v.logs.String(), "sk_test_wrong_secret_value")
	require.NotContains(t, v.logs.String(), "Invalid authentication", "Clerk's messages are not logged")

	_, err = reconcile.NewClient(reconcile.ClientConfig{APIURL: v.srv.URL})
	require.EqualError(t, err, "CLERK_SECRET_KEY is not set: reconciliation reads Clerk's Backend API with the instance's secret key (sk_…)")
	_, err = reconcile.NewClient(reconcile.ClientConfig{SecretKey: "sk_x", APIURL: "ftp://x"})
	require.EqualError(t, err, "CLERK_API_URL is not an http(s) URL")
}

// The database going away mid-run ends it with an error: what was
// appended stays, nothing is inferred, and the next run finishes the job.
func TestDatabaseCutMidRunInfersNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 1500)
	proxy, viaProxy := testdb.NewProxy(t, v.db)
	var once sync.Once
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		if r.URL.Query().Get("offset") == "1000" {
			once.Do(proxy.Cut)
		}
		return 0, nil
	}
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(viaProxy)
	require.NoError(t, err)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	sum, err := reconcile.Run(ctx, conn, reconcile.Config{API: v.client(reconcile.ClientConfig{}), Pool: v.db.Pool, Store: v.store, Logger: v.logger,
		Sign: func(e *domain.LedgerEntry) { seal.SignInternalEntry(key, e) }})
	require.Error(t, err)
	require.NotErrorIs(t, err, reconcile.Incomplete, "a database failure is not a partial listing")
	require.Regexp(t, `^compare with the (users table|ledger): `, err.Error())
	require.False(t, sum.Complete)
	require.Zero(t, sum.Deleted)
	require.LessOrEqual(t, sum.Appended, int64(1000))

	proxy.Restore()
	v.api.Fault = nil
	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, 1500, v.ledgerCount(domain.SourceClerkAPI))
	v.project()
	v.requireActiveEqualsClerk()
}

// Appends run behind the listing (a page is appended while the next ones
// are compared): an append refused after the last page was listed must
// still make the run incomplete before any absence is acted on.
func TestAnAppendRefusedAfterTheListingInfersNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addClerk(1, 1500)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.project()
	gone, refused := idOf(t, user(t, 1200, 0)), idOf(t, user(t, 1499, 9))
	v.api.Delete(gone)
	require.NoError(t, v.api.Put(user(t, 1499, 9)))
	// PostgreSQL itself refuses the last page's snapshot.
	_, err = v.db.Pool.Exec(context.Background(), fmt.Sprintf(`
		CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.subject_id = '%s' THEN RAISE EXCEPTION 'refused for the test'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_one BEFORE INSERT ON ledger_events FOR EACH ROW EXECUTE FUNCTION refuse_one();`,
		refused))
	require.NoError(t, err)

	sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.False(t, sum.Complete)
	require.Equal(t, int64(1500-1), sum.Listed)
	require.Equal(t, int64(1), sum.Errors)
	require.Zero(t, sum.Appended)
	require.Zero(t, sum.Deleted)
	require.Contains(t, v.logs.String(), `"msg":"reconcile_append_failed"`)
	v.project()
	require.False(t, v.users()[gone].Deleted, "nothing inferred from an incomplete run")

	_, err = v.db.Pool.Exec(context.Background(), `DROP TRIGGER refuse_one ON ledger_events`)
	require.NoError(t, err)
	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, int64(2), sum.Appended, "the refused snapshot and the deletion")
	require.Equal(t, int64(1), sum.Deleted)
	v.project()
	v.requireActiveEqualsClerk()
}
