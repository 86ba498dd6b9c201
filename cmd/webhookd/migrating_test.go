package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

var sqlBlock = regexp.MustCompile("(?s)```sql\n(.*?)```")

// The SQL in docs/MIGRATING.md runs as written (schema names aside) and
// finds the rows the guide says: the view keeps the route's column names,
// the "clerkId IS NULL" query finds deleted users the route had stored,
// and the active query only live ones.
func TestMigratingGuideQueries(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("../../docs/MIGRATING.md")
	require.NoError(t, err)
	blocks := sqlBlock.FindAllStringSubmatch(string(guide), -1)
	require.Len(t, blocks, 3, "the test knows three SQL blocks in the guide")

	app := testdb.NewEmpty(t) // stands for public
	h := start(t)
	inTest := func(q string) string {
		q = strings.ReplaceAll(q, "webhookd.users", h.db.Schema+".users")
		return strings.ReplaceAll(q, "public.", app.Schema+".")
	}
	ctx := context.Background()

	live := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 1, UserID: "user_live", Time: h.now})
	gone := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 2, UserID: "user_gone", Time: h.now})
	goneDeleted := clerkfake.MustBuild("user.deleted", clerkfake.Options{Seed: 3, UserID: "user_gone", Time: h.now.Add(time.Second)})
	neverSeen := clerkfake.MustBuild("user.deleted", clerkfake.Options{Seed: 4, UserID: "user_never_seen", Time: h.now})
	for i, body := range [][]byte{live, gone, goneDeleted, neverSeen} {
		require.Equal(t, 200, h.deliver(fmt.Sprintf("msg_guide_%d", i), body).status)
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE deleted_at IS NOT NULL OR email IS NOT NULL`).Scan(&n))
		return n == 3
	}, 10*time.Second, 10*time.Millisecond)

	ids := func(q string) string {
		rows, err := h.db.Pool.Query(ctx, inTest(q))
		require.NoError(t, err, q)
		var got []string
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			got = append(got, vals[0].(string))
		}
		require.NoError(t, rows.Err())
		slices.Sort(got)
		return strings.Join(got, ",")
	}

	_, err = h.db.Pool.Exec(ctx, inTest(blocks[0][1]))
	require.NoError(t, err, "the view")
	require.Equal(t, "user_gone,user_live,user_never_seen", ids(`SELECT "clerkId" FROM public.clerk_users`))
	var role string
	var practice *string
	require.NoError(t, h.db.Pool.QueryRow(ctx, inTest(`SELECT role, "practiceId" FROM public.clerk_users WHERE "clerkId" = 'user_live'`)).Scan(&role, &practice))
	require.Equal(t, "USER", role)
	require.Nil(t, practice)

	require.Equal(t, "user_gone", ids(blocks[1][1]), "the route's clerkId IS NULL rows")
	require.Equal(t, "user_live", ids(blocks[2][1]), "active users")
}
