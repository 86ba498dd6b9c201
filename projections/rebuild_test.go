package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/projections"
)

// randomHistory appends a shuffled history with repeats and webhookd role
// assignments for n users.
func randomHistory(v *env, seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var events []event
	for u := range n {
		id := fmt.Sprintf("user_hist%03d_%d", u, seed)
		at := t0.Add(time.Duration(u) * time.Second)
		events = append(events, event{domain.EventUserCreated, id, at, "C"})
		for k := range rng.IntN(3) {
			events = append(events, event{domain.EventUserUpdated, id, at.Add(time.Duration(k+1) * time.Minute), fmt.Sprintf("U%d", k)})
		}
		if rng.IntN(4) == 0 {
			events = append(events, event{domain.EventUserDeleted, id, at.Add(time.Hour), ""})
		}
		if rng.IntN(3) == 0 {
			events = append(events, event{domain.EventUserAccessChanged, id, at, []string{"ADMIN", "NURSE", "USER"}[rng.IntN(3)]})
		}
	}
	for range len(events) / 4 {
		events = append(events, events[rng.IntN(len(events))])
	}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	for _, e := range events {
		v.append(e)
	}
}

func TestRebuildEqualsLiveProjection(t *testing.T) {
	t.Parallel()
	v := setup(t)
	randomHistory(v, 1, 120)
	v.run(projections.RunnerConfig{})()
	ctx := context.Background()
	cfg := projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet, BatchSize: 64}

	report, err := projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal, "report: %+v", report)
	require.EqualValues(t, 120, report.Rows)
	require.Equal(t, report.Digest, report.LiveDigest)
	require.False(t, report.Swapped)

	// Drift: a row changed behind the projection's back is found.
	before := v.users()
	_, err = v.db.Pool.Exec(ctx, `UPDATE users SET role = 'OWNER' WHERE clerk_id = 'user_hist007_1'`)
	require.NoError(t, err)
	report, err = projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.False(t, report.Equal)
	require.Equal(t, []string{"user_hist007_1"}, report.Differing)

	// A rebuild replaces the drifted table with what the ledger says.
	report, err = projections.Rebuild(ctx, cfg, projections.Users, false)
	require.NoError(t, err)
	require.True(t, report.Swapped)
	require.Equal(t, before, v.users())
	report, err = projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal)
}

func TestRebuildWhileEventsArrive(t *testing.T) {
	t.Parallel()
	v := setup(t)
	randomHistory(v, 2, 100)
	wait := v.run(projections.RunnerConfig{})

	// More events keep arriving during the rebuild.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("user_late%04d", i)
			v.append(event{domain.EventUserCreated, id, t0, "Late"})
			if i%3 == 0 {
				v.append(event{domain.EventUserAccessChanged, id, t0, "ADMIN"})
			}
		}
	})
	ctx := context.Background()
	var report projections.RebuildReport
	var err error
	for range 3 {
		report, err = projections.Rebuild(ctx, projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet, BatchSize: 50}, projections.Users, false)
		require.NoError(t, err)
		require.True(t, report.Swapped)
	}
	close(stop)
	wg.Wait()
	wait()

	// Every event took effect once: the live table equals a fresh fold of
	// the whole ledger, and every late user is there with its role.
	check, err := projections.Rebuild(ctx, projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet}, projections.Users, true)
	require.NoError(t, err)
	require.True(t, check.Equal, "report: %+v", check)
	users := v.users()
	late := 0
	for id, u := range users {
		var i int
		if _, err := fmt.Sscanf(id, "user_late%04d", &i); err == nil {
			late++
			want := "USER"
			if i%3 == 0 {
				want = "ADMIN"
			}
			require.Equal(t, want, u.Role, id)
			require.Equal(t, "Late", *u.FirstName, id)
		}
	}
	require.Positive(t, late)
}

func TestCancelledRebuildLeavesLiveTableUntouched(t *testing.T) {
	t.Parallel()
	v := setup(t)
	randomHistory(v, 3, 60)
	v.run(projections.RunnerConfig{})()
	before := v.users()

	ctx, cancel := context.WithCancel(context.Background())
	_, err := projections.Rebuild(ctx, projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet, BatchSize: 10,
		Progress: func(done, total int64) { cancel() }}, projections.Users, false)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, before, v.users())
	var shadows int
	require.NoError(t, v.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'users_rebuild%'`).Scan(&shadows))
	require.Zero(t, shadows)
}
