package migrations_test

import (
	"context"
	"database/sql"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/migrations"
)

// openWithSearchPath opens the test server with search_path set to
// searchPath, and drops schema when the test ends.
func openWithSearchPath(t *testing.T, searchPath, schema string) *sql.DB {
	t.Helper()
	u, err := url.Parse(testdb.ServerURL())
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", searchPath)
	// pgx reads "+" in a URL literally: spaces must be %20.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	pool := testdb.Pool(t, u.String())
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`)
		_ = db.Close()
	})
	return db
}

// A search_path naming a schema that does not exist yet: migrate creates
// it and puts every table there.
func TestUpCreatesTheSchemaSearchPathNames(t *testing.T) {
	t.Parallel()
	plain, afterUser, quoted := "whd_plain_"+testdb.RandomSuffix(), "whd_user_"+testdb.RandomSuffix(), "Whd Quoted "+testdb.RandomSuffix()
	for _, tc := range []struct{ name, searchPath, want string }{
		{"plain", plain, plain},
		{"after $user", `"$user", ` + afterUser, afterUser},
		{"quoted, mixed case", `"` + quoted + `"`, quoted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.want
			db := openWithSearchPath(t, tc.searchPath, want)
			ctx := context.Background()
			// Two at once, as two replicas starting with --migrate.
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = migrations.Up(ctx, db, nil)
				}()
			}
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			var n int
			require.NoError(t, db.QueryRowContext(ctx,
				`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('ledger_events', 'users')`, want).Scan(&n))
			require.Equal(t, 2, n, "tables in schema %q", want)
			v, err := migrations.Version(ctx, db)
			require.NoError(t, err)
			require.Equal(t, migrations.Latest, v)
		})
	}
}

func TestUpWithoutAnySchemaToCreateSaysWhatToSet(t *testing.T) {
	t.Parallel()
	db := openWithSearchPath(t, `"$user"`, "unused")
	var user string
	require.NoError(t, db.QueryRow(`SELECT current_user`).Scan(&user))
	var exists bool
	require.NoError(t, db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_user)`).Scan(&exists))
	if exists {
		t.Fatalf("a schema named after the test user %q exists; this test needs a server without one", user)
	}
	_, err := migrations.Up(context.Background(), db, nil)
	require.EqualError(t, err, `migrate: search_path "\"$user\"" names no schema to create webhookd's tables in; set search_path in DATABASE_URL (for example ?search_path=webhookd)`)
}
