package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// TestRowRewrittenBetweenAppendAndProjectionIsRefused: the process that
// verified a delivery does not verify its row again when it reads it back
// unchanged (seal.Recent), so the hostile case is a row rewritten by a
// superuser after the append and before the users projection reads it.
// The projection is held at its position while the row is rewritten; it
// must then refuse the row by its origin, not take it for the delivery it
// verified, and go on applying the next one.
func TestRowRewrittenBetweenAppendAndProjectionIsRefused(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	h := startOn(t, db)
	ctx := context.Background()

	// The projections create their position rows once running.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_offsets WHERE consumer_group = 'projection.users'`).Scan(&n))
		return n == 1
	}, 30*time.Second, 10*time.Millisecond)
	hold, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer hold.Rollback(ctx) //nolint:errcheck // committed below
	var group string
	require.NoError(t, hold.QueryRow(ctx, `SELECT consumer_group FROM ledger_offsets WHERE consumer_group = 'projection.users' FOR UPDATE`).Scan(&group),
		"the users projection's position is locked")

	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 77, UserID: "user_rewritten", Time: h.now})
	a := h.deliver("msg_rewritten", body)
	require.Equal(t, 200, a.status, "answer: %v", a.body)
	for _, q := range []string{
		`SET LOCAL session_replication_role = replica`,
		`UPDATE ledger_events SET payload = replace(convert_from(payload, 'UTF8'), '"first_name":"', '"first_name":"X')::bytea WHERE svix_id = 'msg_rewritten'`,
	} {
		tag, err := hold.Exec(ctx, q)
		require.NoError(t, err, q)
		if q[0] == 'U' {
			require.EqualValues(t, 1, tag.RowsAffected())
		}
	}
	require.NoError(t, hold.Commit(ctx))

	var failure string
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT error FROM projection_failures WHERE projection = 'users' AND svix_id = 'msg_rewritten'`).Scan(&failure)
		return err == nil
	}, 30*time.Second, 10*time.Millisecond, "logs:\n%s", h.logs.String())
	require.Contains(t, failure, "origin_unverified")
	require.Contains(t, failure, "svix signature matches none")

	ok := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 78, UserID: "user_untouched", Time: h.now})
	a = h.deliver("msg_untouched", ok)
	require.Equal(t, 200, a.status, "answer: %v", a.body)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE clerk_id = 'user_untouched'`).Scan(&n))
		return n == 1
	}, 30*time.Second, 10*time.Millisecond)
	var rewritten int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE clerk_id = 'user_rewritten'`).Scan(&rewritten))
	require.Zero(t, rewritten, "the rewritten row was not projected")
}
