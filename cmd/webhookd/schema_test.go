package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// inSchema returns a database in the test server whose URL puts webhookd's
// tables in schema (search_path=schema), as docs/MIGRATING.md tells a team
// to; the schema does not exist until webhookd migrates.
func inSchema(t *testing.T, schema string) *testdb.DB {
	t.Helper()
	u, err := url.Parse(testdb.ServerURL())
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pool := testdb.Pool(t, u.String())
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
	})
	return &testdb.DB{URL: u.String(), Pool: pool, Schema: schema}
}

// Two webhookd deployments in two schemas of one database, next to the
// application's own users table (the Next.js route's "clerkId" layout):
// each keeps only its own deliveries, and the application's table is
// untouched.
func TestTwoDeploymentsInTwoSchemasBesideTheAppsTable(t *testing.T) {
	t.Parallel()
	app := testdb.NewEmpty(t) // stands for the application's own schema (public)
	ctx := context.Background()
	_, err := app.Pool.Exec(ctx, `
		CREATE TABLE users ("clerkId" text UNIQUE, email text NOT NULL, name text, role text NOT NULL DEFAULT 'USER', "practiceId" text);
		INSERT INTO users ("clerkId", email, name, "practiceId") VALUES ('user_app', 'app@example.com', 'App User', 'practice_1')`)
	require.NoError(t, err)
	appRows := func() string {
		var s string
		require.NoError(t, app.Pool.QueryRow(ctx, `SELECT string_agg(concat_ws('|', "clerkId", email, name, role, "practiceId"), ';') FROM users`).Scan(&s))
		return s
	}
	before := appRows()

	suffix := testdb.RandomSuffix()
	a := startOn(t, inSchema(t, "webhookd_a_"+suffix), withConfig(func(c *AppConfig) { c.Migrate = true }))
	b := startOn(t, inSchema(t, "webhookd_b_"+suffix), withConfig(func(c *AppConfig) { c.Migrate = true }))

	onlyA := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 1, UserID: "user_only_in_a", Time: a.now})
	onlyB := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 2, UserID: "user_only_in_b", Time: b.now})
	both := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 3, UserID: "user_in_both", Time: a.now})
	require.Equal(t, "accepted", a.deliver("msg_schema_a", onlyA).body["status"])
	require.Equal(t, "accepted", b.deliver("msg_schema_b", onlyB).body["status"])
	// The same svix-id is new to each deployment: deduplication is per ledger.
	require.Equal(t, "accepted", a.deliver("msg_schema_both", both).body["status"])
	require.Equal(t, "accepted", b.deliver("msg_schema_both", both).body["status"])

	users := func(h *harness) string {
		var s string
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(clerk_id, ',' ORDER BY clerk_id), '') FROM users`).Scan(&s))
		return s
	}
	require.Eventually(t, func() bool { return users(a) == "user_in_both,user_only_in_a" }, 10*time.Second, 10*time.Millisecond, "a: %s", users(a))
	require.Eventually(t, func() bool { return users(b) == "user_in_both,user_only_in_b" }, 10*time.Second, 10*time.Millisecond, "b: %s", users(b))
	require.EqualValues(t, 2, a.ledgerCount())
	require.EqualValues(t, 2, b.ledgerCount())

	require.Equal(t, before, appRows(), "the application's users table changed")
	var columns string
	require.NoError(t, app.Pool.QueryRow(ctx, `SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'users'`, app.Schema).Scan(&columns))
	require.Equal(t, "clerkId,email,name,role,practiceId", columns)
	var tables string
	require.NoError(t, app.Pool.QueryRow(ctx, `SELECT string_agg(table_name, ',') FROM information_schema.tables WHERE table_schema = $1`, app.Schema).Scan(&tables))
	require.Equal(t, "users", tables, "webhookd created tables in the application's schema")
	require.False(t, strings.Contains(a.logs.String(), `"level":"ERROR"`), a.logs.String())
}
