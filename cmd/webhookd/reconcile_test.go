package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/reconcile"
)

// clerkBase is the Clerk time the reconciliation tests' users were
// created around.
var clerkBase = time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)

// clerkUserOptions are user n at version v (updated v seconds after its
// creation, n minutes after clerkBase).
func clerkUserOptions(n, v int) clerkfake.Options {
	created := clerkBase.Add(time.Duration(n) * time.Minute)
	return clerkfake.Options{Seed: int64(1000 + n), PrimaryEmail: 1, CreatedAt: created, Time: created.Add(time.Duration(v) * time.Second)}
}

func clerkUser(t *testing.T, n, v int) []byte {
	t.Helper()
	b, err := clerkfake.APIUser(clerkUserOptions(n, v))
	require.NoError(t, err)
	return b
}

func clerkUserID(t *testing.T, n int) string {
	t.Helper()
	u, err := domain.ParseUser(clerkUser(t, n, 0), time.Time{})
	require.NoError(t, err)
	return u.ClerkID
}

// fakeClerk serves a fake Backend API accepting secretKey.
func fakeClerk(t *testing.T, secretKey string) (*clerkfake.API, string) {
	t.Helper()
	api := clerkfake.NewAPI(secretKey)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv.URL
}

type userRow struct {
	UpdatedAt time.Time
	Email     string
	Deleted   bool
}

func usersTable(t *testing.T, db *testdb.DB) map[string]userRow {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT clerk_id, clerk_updated_at, coalesce(email, ''), deleted_at IS NOT NULL FROM users`)
	require.NoError(t, err)
	out := map[string]userRow{}
	var id string
	var at *time.Time
	var r userRow
	_, err = pgx.ForEachRow(rows, []any{&id, &at, &r.Email, &r.Deleted}, func() error {
		r.UpdatedAt = time.Time{}
		if at != nil {
			r.UpdatedAt = at.UTC()
		}
		out[id] = r
		return nil
	})
	require.NoError(t, err)
	return out
}

// clerkTable is what the users table must hold for api's users, plus
// deleted as soft-deleted rows whose profile is whatever was last seen.
func clerkTable(t *testing.T, api *clerkfake.API) map[string]userRow {
	t.Helper()
	out := map[string]userRow{}
	for _, id := range api.IDs() {
		u, err := domain.ParseUser(api.User(id), time.Time{})
		require.NoError(t, err)
		out[id] = userRow{UpdatedAt: u.UpdatedAt.UTC(), Email: u.Email}
	}
	return out
}

func activeUsers(all map[string]userRow) map[string]userRow {
	out := map[string]userRow{}
	for id, r := range all {
		if !r.Deleted {
			out[id] = r
		}
	}
	return out
}

func ledgerBySource(t *testing.T, db *testdb.DB) map[string]int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT source, count(*) FROM ledger_events GROUP BY source`)
	require.NoError(t, err)
	out := map[string]int{}
	var s string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[s] = n; return nil })
	require.NoError(t, err)
	return out
}

// The "done when", with the real binary: on a database that
// already holds users (from webhooks), `CLERK_API_URL=<fake>
// CLERK_SECRET_KEY=sk_test_x webhookd reconcile` makes users equal to the
// fake Clerk's users, deleted ones soft-deleted; a second run appends
// nothing.
func TestReconcileMakesUsersEqualClerksThenAppendsNothing(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	// Users 1..6 arrived by webhook.
	for n := 1; n <= 6; n++ {
		body, err := clerkfake.Build("user.created", clerkUserOptions(n, 0))
		require.NoError(t, err)
		require.Equal(t, "accepted", h.deliver(fmt.Sprintf("msg_done_%d", n), body).body["status"])
	}
	require.Eventually(t, func() bool { return len(usersTable(t, h.db)) == 6 }, 20*time.Second, 10*time.Millisecond)

	// Clerk: 1 and 2 unchanged, 3 and 4 changed since (their user.updated
	// never arrived), 5 and 6 deleted (their user.deleted neither), and
	// 7..1200 created while webhookd was not connected.
	api, apiURL := fakeClerk(t, "sk_test_x")
	for n := 1; n <= 1200; n++ {
		v := 0
		if n == 3 || n == 4 {
			v = 90
		}
		if n != 5 && n != 6 {
			require.NoError(t, api.Put(clerkUser(t, n, v)))
		}
	}
	// Organizations: 40 with 3 memberships each; org 1 arrived by
	// webhook and was deleted since, with its memberships.
	orgBody, err := clerkfake.Build("organization.created", clerkOrgOptions(1))
	require.NoError(t, err)
	require.Equal(t, "accepted", h.deliver("msg_done_org_1", orgBody).body["status"])
	for n := 2; n <= 40; n++ {
		o, err := clerkfake.APIOrganization(clerkOrgOptions(n))
		require.NoError(t, err)
		require.NoError(t, api.PutOrganization(o))
		for m := 1; m <= 3; m++ {
			raw, err := clerkfake.APIMembership(clerkfake.Options{Seed: int64(n*10 + m), ID: fmt.Sprintf("orgmem_done_%d_%d", n, m), OrgID: clerkOrgOptions(n).ID,
				UserID: clerkUserID(t, m), CreatedAt: clerkBase, Time: clerkBase.Add(time.Duration(n) * time.Second)})
			require.NoError(t, err)
			require.NoError(t, api.PutMembership(raw))
		}
	}
	env := []string{"DATABASE_URL=" + h.db.URL, "CLERK_API_URL=" + apiURL, "CLERK_SECRET_KEY=sk_test_x",
		"WEBHOOKD_SIGNING_KEY=" + base64.StdEncoding.EncodeToString(sealKey.Seed()), "WEBHOOKD_RECONCILE_BUDGET=-1"}
	stdout, stderr, code := runMain(t, t.TempDir(), env, "reconcile")
	require.Equal(t, 0, code, stderr)
	var report struct {
		reconcile.Summary
		DryRun bool `json:"dry_run"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &report), stdout)
	require.Equal(t, int64(1198), report.Listed)
	require.Equal(t, map[string]int64{"missing": 1194, "stale": 2, "deleted": 2, "organization_missing": 39, "organization_deleted": 1, "membership_missing": 117}, report.Found)
	require.Equal(t, reconcile.Counts{Listed: 39, Appended: 40, Deleted: 1, Complete: true}, report.Organizations)
	require.Equal(t, reconcile.Counts{Listed: 117, Appended: 117, Complete: true}, report.Memberships)
	require.Equal(t, int64(1198), report.Appended)
	require.Equal(t, int64(2), report.Deleted)
	require.NotContains(t, stderr, "@", "no member's email in the logs")
	require.Equal(t, int64(2), report.Unchanged)
	require.Zero(t, report.Errors)
	require.True(t, report.Complete)
	require.Contains(t, stderr, `"msg":"reconcile_finished"`)
	require.NotContains(t, stderr, "sk_test_x")

	want := clerkTable(t, api)
	var got map[string]userRow
	require.Eventually(t, func() bool {
		got = usersTable(t, h.db)
		return len(got) == 1200 && assertEqual(activeUsers(got), want)
	}, 60*time.Second, 20*time.Millisecond, "users equals Clerk's users")
	for _, n := range []int{5, 6} {
		require.True(t, got[clerkUserID(t, n)].Deleted, "user %d soft-deleted", n)
	}
	require.Eventually(t, func() bool {
		return assertEqual(activeVersions(t, h.db, "practices", "clerk_org_id"), clerkVersions(t, api.OrganizationIDs(), api.Organization, "org")) &&
			assertEqual(activeVersions(t, h.db, "memberships", "clerk_membership_id"), clerkVersions(t, nil, nil, "membership", api.Memberships()))
	}, 60*time.Second, 20*time.Millisecond, "practices and memberships equal Clerk's")
	require.Equal(t, map[string]int{"clerk": 7, "clerk-api": 1198 + 40 + 117}, ledgerBySource(t, h.db))
	// No entry failed its origin check (signed with the key serve seals with).
	var failures int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM projection_failures`).Scan(&failures))
	require.Zero(t, failures)

	stdout, stderr, code = runMain(t, t.TempDir(), env, "reconcile")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &report), stdout)
	require.Zero(t, report.Appended)
	require.Equal(t, int64(1198), report.Unchanged)
	require.Zero(t, report.Organizations.Appended+report.Memberships.Appended)
	require.Equal(t, map[string]int{"clerk": 7, "clerk-api": 1198 + 40 + 117}, ledgerBySource(t, h.db), "a second run appends nothing")

	// The sealer sealed every entry: its origin check accepted them; an
	// export of them verifies offline.
	h.waitCheckpoint(1205 + 157)
	g, out := testGlobals()
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, (&ExportCmd{Database: Database{URL: h.db.URL}, Out: dir, Actor: "auditor", SigningKey: sealKeyText}).Run(context.Background(), g))
	out.Reset()
	require.NoError(t, (&VerifyCmd{Bundle: dir, SigningKey: sealKeyText}).Run(context.Background(), g))
	require.Regexp(t, `^OK: 1362 entries `, out.String())
	entries, err := os.ReadFile(filepath.Join(dir, "entries.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 1198+157, strings.Count(string(entries), `"source":"clerk-api"`))
}

// clerkOrgOptions is organization n.
func clerkOrgOptions(n int) clerkfake.Options {
	return clerkfake.Options{Seed: int64(5000 + n), ID: fmt.Sprintf("org_done_%d", n), CreatedAt: clerkBase, Time: clerkBase.Add(time.Duration(n) * time.Minute)}
}

// activeVersions is a read model's active rows: id and Clerk's updated_at.
func activeVersions(t *testing.T, db *testdb.DB, table, column string) map[string]time.Time {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT `+column+`, clerk_updated_at FROM `+table+` WHERE deleted_at IS NULL`)
	require.NoError(t, err)
	out := map[string]time.Time{}
	var id string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error { out[id] = at.UTC(); return nil })
	require.NoError(t, err)
	return out
}

// clerkVersions is the fake Clerk's organizations (ids, get) or
// memberships (all), by id and updated_at.
func clerkVersions(t *testing.T, ids []string, get func(string) []byte, kind string, all ...map[string][]byte) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	if kind == "org" {
		for _, id := range ids {
			o, err := domain.ParseSnapshotOrganization(get(id))
			require.NoError(t, err)
			out[id] = o.UpdatedAt.UTC()
		}
		return out
	}
	for id, raw := range all[0] {
		m, err := domain.ParseSnapshotMembership(raw)
		require.NoError(t, err)
		out[id] = m.UpdatedAt.UTC()
	}
	return out
}

// A snapshot inserted with webhookd's database role but not signed with
// webhookd's key is not projected (origin_unverified) and not sealed.
func TestForgedSnapshotIsNeitherProjectedNorSealed(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	ctx := context.Background()
	body, err := clerkfake.Build("user.created", clerkUserOptions(1, 0))
	require.NoError(t, err)
	require.Equal(t, "accepted", h.deliver("msg_forge_1", body).body["status"])
	h.waitCheckpoint(1)
	id := clerkUserID(t, 1)
	require.Eventually(t, func() bool { return len(usersTable(t, h.db)) == 1 }, 20*time.Second, 10*time.Millisecond)
	honest := usersTable(t, h.db)[id]

	// A newer version of the user with the forger's address, signed with
	// a key that is not webhookd's.
	o := clerkUserOptions(1, 500)
	o.Email = "forger@attacker-example.net"
	raw, err := clerkfake.APIUser(o)
	require.NoError(t, err)
	forged, _, err := domain.NewUserSnapshotEntry(raw, time.Now())
	require.NoError(t, err)
	seal.SignInternalEntry(ed25519.NewKeyFromSeed([]byte("not webhookd's key, 32 bytes....")), &forged)
	var off int64
	require.NoError(t, h.db.Pool.QueryRow(ctx, `
		INSERT INTO ledger_events (uuid, payload, svix_id, source, signature, event_type, subject_id,
			instance_id, event_time, timestamp_unit, received_at)
		VALUES (gen_random_uuid()::text, $1, $2, 'clerk-api', $3, $4, $5, $6, $7, 'ms', $8)
		RETURNING "offset"`, forged.Payload, forged.SvixID, forged.Signature, forged.EventType, forged.SubjectID,
		forged.InstanceID, forged.EventTime, forged.ReceivedAt).Scan(&off))
	var failure string
	require.Eventually(t, func() bool {
		return h.db.Pool.QueryRow(ctx, `SELECT error FROM projection_failures WHERE ledger_offset = $1`, off).Scan(&failure) == nil
	}, 20*time.Second, 10*time.Millisecond)
	require.Contains(t, failure, "origin_unverified: ledger entry at offset")
	require.Contains(t, failure, "source clerk-api, clerk.user.snapshot) does not prove its origin: it is signed by key")
	require.Equal(t, honest, usersTable(t, h.db)[id], "the forged snapshot never reached users")
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), `"msg":"sealer_integrity_failure"`) }, 20*time.Second, 10*time.Millisecond)
}

func assertEqual[T comparable](a, b map[string]T) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Two reconcile commands at once (cron on two hosts): the second waits
// for the first (the lock), and each snapshot is appended once.
func TestTwoReconcileCommandsAtOnceAppendEachOnce(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	api, apiURL := fakeClerk(t, "sk_test_x")
	for n := 1; n <= 800; n++ {
		require.NoError(t, api.Put(clerkUser(t, n, 0)))
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	for i := range outs {
		wg.Go(func() {
			cmd := ReconcileCmd{Database: Database{URL: db.URL}, ClerkAPI: ClerkAPI{SecretKey: "sk_test_x", APIURL: apiURL, Budget: -1}}
			g, out := testGlobals()
			require.NoError(t, cmd.Run(context.Background(), g))
			outs[i] = out.String()
		})
	}
	wg.Wait()
	appended := 0
	for _, o := range outs {
		var s reconcile.Summary
		require.NoError(t, json.Unmarshal([]byte(o), &s))
		appended += int(s.Appended)
	}
	require.Equal(t, 800, appended)
	require.Equal(t, map[string]int{"clerk-api": 800}, ledgerBySource(t, db))
}

// A dry run prints the differences (ids only) and appends nothing.
func TestReconcileDryRunAppendsNothing(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	api, apiURL := fakeClerk(t, "sk_test_x")
	for n := 1; n <= 30; n++ {
		require.NoError(t, api.Put(clerkUser(t, n, 0)))
	}
	cmd := ReconcileCmd{Database: Database{URL: db.URL}, ClerkAPI: ClerkAPI{SecretKey: "sk_test_x", APIURL: apiURL, Budget: -1}, DryRun: true}
	g, out := testGlobals()
	require.NoError(t, cmd.Run(context.Background(), g))
	var report struct {
		reconcile.Summary
		DryRun bool `json:"dry_run"`
	}
	require.NoError(t, json.Unmarshal([]byte(out.String()), &report))
	require.True(t, report.DryRun)
	require.Equal(t, map[string]int64{"missing": 30}, report.Found)
	require.Zero(t, report.Appended)
	require.Len(t, report.Samples, 20)
	require.Equal(t, reconcile.Difference{Kind: "missing", ClerkID: clerkUserID(t, 1)}, report.Samples[0])
	require.NotContains(t, out.String(), "@example", "ids only")
	require.Empty(t, ledgerBySource(t, db))
}

// Settings: no key, a bad URL, a bad budget: exit 2, one line.
func TestReconcileSettingsExit2(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "webhookd: CLERK_SECRET_KEY is not set: reconciliation reads Clerk's Backend API with the instance's secret key (sk_…)\n"},
		{[]string{"CLERK_SECRET_KEY=sk_test_x", "CLERK_API_URL=api.clerk.com"}, "webhookd: CLERK_API_URL is not an http(s) URL\n"},
		{[]string{"CLERK_SECRET_KEY=sk_test_x", "WEBHOOKD_RECONCILE_BUDGET=0"}, "webhookd: WEBHOOKD_RECONCILE_BUDGET: must be a positive number of requests per 10 seconds, or -1 for no limit, got 0\n"},
	} {
		_, stderr, code := runMain(t, t.TempDir(), append([]string{"DATABASE_URL=" + db.URL}, c.env...), "reconcile")
		require.Equal(t, 2, code, stderr)
		require.Equal(t, c.want, stderr)
	}
	// Clerk refuses the key: exit 1, Clerk's code, not the key.
	_, apiURL := fakeClerk(t, "sk_test_right")
	stdout, stderr, code := runMain(t, t.TempDir(), []string{"DATABASE_URL=" + db.URL, "CLERK_API_URL=" + apiURL, "CLERK_SECRET_KEY=sk_test_wrong_key_value"}, "reconcile")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `"cause":"GET /v1/users answered 401 (authentication_invalid)"`)
	require.True(t, strings.HasSuffix(stderr, "webhookd: reconciliation incomplete: 1 errors (see the log); nothing was inferred about absent users, organizations or memberships unless their listing completed\n"), stderr)
	require.NotContains(t, stdout+stderr, "sk_test_wrong_key_value")
}

// withReconcile turns on serve's periodic reconciliation against the
// Clerk API at apiURL (key sk_test_x).
func withReconcile(apiURL string, every time.Duration) option {
	return func(c *AppConfig) {
		c.Reconcile = ReconcileConfig{Interval: every, Clerk: ClerkAPI{SecretKey: "sk_test_x", APIURL: apiURL, Budget: -1}}
	}
}

// Two replicas with WEBHOOKD_RECONCILE_INTERVAL: one runs at a time (the
// other skips), every snapshot is appended once, users converges on
// Clerk's users, and the metrics count what was found.
func TestServeReconcilesPeriodicallyOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	api, apiURL := fakeClerk(t, "sk_test_x")
	for n := 1; n <= 300; n++ {
		require.NoError(t, api.Put(clerkUser(t, n, 0)))
	}
	for n := 1; n <= 5; n++ {
		o, err := clerkfake.APIOrganization(clerkOrgOptions(n))
		require.NoError(t, err)
		require.NoError(t, api.PutOrganization(o))
		for m := 1; m <= 2; m++ {
			raw, err := clerkfake.APIMembership(clerkfake.Options{Seed: int64(n*10 + m), ID: fmt.Sprintf("orgmem_serve_%d_%d", n, m), OrgID: clerkOrgOptions(n).ID,
				UserID: clerkUserID(t, m), CreatedAt: clerkBase, Time: clerkBase})
			require.NoError(t, err)
			require.NoError(t, api.PutMembership(raw))
		}
	}
	a := startOn(t, db, withSeal(sealKey), withReconcile(apiURL, 30*time.Millisecond))
	b := startOn(t, db, withSeal(sealKey), withReconcile(apiURL, 30*time.Millisecond))
	want := clerkTable(t, api)
	require.Eventually(t, func() bool { return assertEqual(activeUsers(usersTable(t, db)), want) }, 30*time.Second, 20*time.Millisecond)

	// Clerk deletes a user; the next run soft-deletes it.
	gone := clerkUserID(t, 7)
	api.Delete(gone)
	require.Eventually(t, func() bool { return usersTable(t, db)[gone].Deleted }, 30*time.Second, 20*time.Millisecond)

	require.Eventually(t, func() bool {
		return len(activeVersions(t, db, "practices", "clerk_org_id")) == 5 && len(activeVersions(t, db, "memberships", "clerk_membership_id")) == 10
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, map[string]int{"clerk-api": 301 + 15}, ledgerBySource(t, db), "each snapshot and the deletion appended once")
	var found struct{ missing, deleted, complete, skipped, orgs, members float64 }
	require.Eventually(t, func() bool {
		found.missing, found.deleted, found.complete, found.skipped, found.orgs, found.members = 0, 0, 0, 0, 0, 0
		for _, h := range []*harness{a, b} {
			m := scrape(t, h)
			found.orgs += m.value(`webhookd_reconcile_differences_total{kind="organization_missing"}`)
			found.members += m.value(`webhookd_reconcile_differences_total{kind="membership_missing"}`)
			found.missing += m.value(`webhookd_reconcile_differences_total{kind="missing"}`)
			found.deleted += m.value(`webhookd_reconcile_differences_total{kind="deleted"}`)
			found.complete += m.value(`webhookd_reconcile_runs_total{outcome="complete"}`)
			found.skipped += m.value(`webhookd_reconcile_runs_total{outcome="skipped"}`)
			if m.value(`webhookd_reconcile_runs_total{outcome="complete"}`) > 0 {
				require.Equal(t, float64(h.now.Unix()), m.value("webhookd_reconcile_last_success_timestamp_seconds"))
			}
		}
		return found.deleted == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, float64(300), found.missing, "each difference counted once across the replicas")
	require.Equal(t, float64(5), found.orgs)
	require.Equal(t, float64(10), found.members)
	require.Greater(t, found.complete, float64(1))
	require.Contains(t, a.logs.String()+b.logs.String(), `"msg":"reconcile_finished"`)
}

// Periodic reconciliation needs the secret key: serve refuses to start
// without it, naming both settings.
func TestServeReconcileIntervalNeedsTheKey(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	_, err := NewApp(context.Background(), AppConfig{DatabaseURL: db.URL, SigningSecret: testSecret, Addr: "127.0.0.1:0",
		Reconcile: ReconcileConfig{Interval: time.Hour}})
	require.EqualError(t, err, "WEBHOOKD_RECONCILE_INTERVAL is set: CLERK_SECRET_KEY is not set: reconciliation reads Clerk's Backend API with the instance's secret key (sk_…)")
}

// A replica without WEBHOOKD_SIGNING_KEY does not reconcile a sealed
// ledger: its entries would be unsigned and every sealer would refuse
// them. It says so and appends nothing.
func TestServeReconcileRefusesToAppendUnsignedToASealedLedger(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	api, apiURL := fakeClerk(t, "sk_test_x")
	require.NoError(t, api.Put(clerkUser(t, 1, 0)))
	sealer := startOn(t, db, withSeal(sealKey))
	sealer.deliverN(0, 1)
	sealer.waitCheckpoint(1)
	h := startOn(t, db, withReconcile(apiURL, 20*time.Millisecond))
	require.Eventually(t, func() bool {
		return scrape(t, h).value(`webhookd_reconcile_runs_total{outcome="incomplete"}`) >= 2
	}, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, h.logs.String(), `"msg":"reconcile_failed","cause":"WEBHOOKD_SIGNING_KEY is not set: this command appends to the ledger`)
	require.Equal(t, map[string]int{"clerk": 1}, ledgerBySource(t, db))
	require.Zero(t, scrape(t, h).value("webhookd_reconcile_last_success_timestamp_seconds"))
}

// An organization snapshot (or a membership snapshot) inserted with
// webhookd's database role but not signed with webhookd's key is refused
// like a forged user snapshot: not projected (origin_unverified), not
// sealed.
func TestForgedOrganizationSnapshotIsNeitherProjectedNorSealed(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	ctx := context.Background()
	o := clerkOrgOptions(1)
	body, err := clerkfake.Build("organization.created", o)
	require.NoError(t, err)
	require.Equal(t, "accepted", h.deliver("msg_forge_org_1", body).body["status"])
	h.waitCheckpoint(1)
	require.Eventually(t, func() bool { return len(activeVersions(t, h.db, "practices", "clerk_org_id")) == 1 }, 20*time.Second, 10*time.Millisecond)
	honest := activeVersions(t, h.db, "practices", "clerk_org_id")

	// A newer version of the organization, signed with a key that is not
	// webhookd's; and a membership into it, likewise.
	o.Time = o.Time.Add(time.Hour)
	raw, err := clerkfake.APIOrganization(o)
	require.NoError(t, err)
	parsed, err := domain.ParseSnapshotOrganization(raw)
	require.NoError(t, err)
	forgedOrg := domain.OrganizationSnapshotEntry(raw, parsed, time.Now())
	rawMember, err := clerkfake.APIMembership(clerkfake.Options{Seed: 9, ID: "orgmem_forged", OrgID: o.ID, UserID: "user_forger", CreatedAt: clerkBase, Time: clerkBase})
	require.NoError(t, err)
	m, err := domain.ParseSnapshotMembership(rawMember)
	require.NoError(t, err)
	forgedMember := domain.MembershipSnapshotEntry(rawMember, m, time.Now())
	offsets := map[string]int64{}
	for _, forged := range []domain.LedgerEntry{forgedOrg, forgedMember} {
		seal.SignInternalEntry(ed25519.NewKeyFromSeed([]byte("not webhookd's key, 32 bytes....")), &forged)
		var off int64
		require.NoError(t, h.db.Pool.QueryRow(ctx, `
			INSERT INTO ledger_events (uuid, payload, svix_id, source, signature, event_type, subject_id,
				instance_id, event_time, timestamp_unit, received_at)
			VALUES (gen_random_uuid()::text, $1, $2, 'clerk-api', $3, $4, $5, $6, $7, 'ms', $8)
			RETURNING "offset"`, forged.Payload, forged.SvixID, forged.Signature, forged.EventType, forged.SubjectID,
			forged.InstanceID, forged.EventTime, forged.ReceivedAt).Scan(&off))
		offsets[forged.EventType] = off
	}
	for typ, off := range offsets {
		var failure string
		require.Eventually(t, func() bool {
			return h.db.Pool.QueryRow(ctx, `SELECT error FROM projection_failures WHERE ledger_offset = $1`, off).Scan(&failure) == nil
		}, 20*time.Second, 10*time.Millisecond, typ)
		require.Contains(t, failure, "origin_unverified: ledger entry at offset")
		require.Contains(t, failure, "source clerk-api, "+typ+") does not prove its origin: it is signed by key")
	}
	require.Equal(t, honest, activeVersions(t, h.db, "practices", "clerk_org_id"), "the forged snapshot never reached practices")
	require.Empty(t, activeVersions(t, h.db, "memberships", "clerk_membership_id"), "nor memberships")
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), `"msg":"sealer_integrity_failure"`) }, 20*time.Second, 10*time.Millisecond)
}
