package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/projections"
)

// refusingShadow is the users read model whose rebuilt (shadow) table
// refuses every entry the catch-up before the swap applies to it, and
// whose fold, once complete, runs beforeSwap: the test appends entries
// there and lets the live projection apply them, so that the catch-up has
// work to do.
type refusingShadow struct {
	projections.ReadModel
	beforeSwap func()
}

func (r refusingShadow) WithTable(table string) projections.ReadModel {
	return refusingTable{r.ReadModel.WithTable(table)}
}

func (r refusingShadow) NewFold() projections.Fold {
	return hookedFold{r.ReadModel.NewFold(), r.beforeSwap}
}

type refusingTable struct{ projections.ReadModel }

func (refusingTable) Apply(context.Context, pgx.Tx, domain.LedgerEntry) error {
	return errors.New("the rebuilt table refuses this entry")
}

type hookedFold struct {
	projections.Fold
	hook func()
}

func (f hookedFold) Rows() [][]any {
	f.hook()
	return f.Fold.Rows()
}

// A rebuild never drops an entry the live projection applied: when the
// catch-up cannot apply one to the rebuilt table, the swap is refused and
// the live table kept (before, catchUp skipped it and swapped in a table
// without its effect).
func TestRebuildRefusesToSwapWhenCatchUpFailsOnAnAppliedEntry(t *testing.T) {
	t.Parallel()
	v := setup(t)
	for _, e := range history("user_before") {
		v.append(e)
	}
	wait := v.run(projections.RunnerConfig{})
	wait()
	ctx := context.Background()
	m := refusingShadow{ReadModel: projections.Users, beforeSwap: func() {
		v.append(event{domain.EventUserCreated, "user_during", t0, "Late"})
		wait()
	}}
	_, err := projections.Rebuild(ctx, projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet}, m, false)
	require.ErrorIs(t, err, projections.ErrCatchUpRefused)
	require.ErrorContains(t, err, "the rebuilt table refuses this entry")
	users := v.users()
	require.Contains(t, users, "user_during", "the live table keeps the entry's effect")
	require.Contains(t, users, "user_before")
	var shadows int
	require.NoError(t, v.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'users_rebuild_%'`).Scan(&shadows))
	require.Zero(t, shadows, "the shadow table is dropped")
	var failures int
	require.NoError(t, v.db.Pool.QueryRow(ctx, `SELECT count(*) FROM projection_failures`).Scan(&failures))
	require.Zero(t, failures)
}

// An entry the live projection skipped as poison (recorded in
// projection_failures) is skipped by the catch-up too, reported, and the
// swap goes ahead.
func TestRebuildCatchUpSkipsWhatTheLiveProjectionSkipped(t *testing.T) {
	t.Parallel()
	v := setup(t)
	for _, e := range history("user_before") {
		v.append(e)
	}
	wait := v.run(projections.RunnerConfig{MaxAttempts: 2, RetryInterval: time.Millisecond})
	wait()
	ctx := context.Background()
	var poison int64
	m := refusingShadow{ReadModel: projections.Users, beforeSwap: func() {
		if poison != 0 {
			return
		}
		poison = v.appendBody(clerkBody(domain.EventUserUpdated, t0, `{"id":"user_poison","first_name":7}`))
		wait()
	}}
	// Only the poison entry reaches the catch-up, and the shadow refuses
	// it as the live projection did.
	report, err := projections.Rebuild(ctx, projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet}, m, false)
	require.NoError(t, err)
	require.True(t, report.Swapped)
	require.Len(t, report.Skipped, 1)
	require.Equal(t, poison, report.Skipped[0].Offset)
	require.Equal(t, []int64{poison}, v.failures())
	require.EqualValues(t, 1, report.Rows, "user_before only")
}
