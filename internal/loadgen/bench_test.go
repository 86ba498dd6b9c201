package loadgen

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
)

// TestRunSmallBench runs a tiny benchmark end to end: a real webhookd
// child built from this tree, the test PostgreSQL, the position watcher
// and the users check. It asserts outcomes, never timings.
func TestRunSmallBench(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds webhookd and runs it as a child process")
	}
	binary := filepath.Join(t.TempDir(), "webhookd")
	build := exec.Command("go", "build", "-o", binary, "github.com/webhookd/webhookd/cmd/webhookd")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build webhookd: %s", out)

	var log, childLog bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, BenchConfig{
		DatabaseURL: testdb.ServerURL(), Events: 600, Users: 100, Concurrency: 4,
		Binary: binary, Log: &log, ChildOutput: &childLog, ChildEnv: []string{"LOG_LEVEL=warn"},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bench log:\n%s\nchild log:\n%s", log.String(), childLog.String())
		}
	})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"200": 600}, rep.Statuses)
	require.Zero(t, rep.ConnErrors)
	require.Equal(t, 600, rep.LagEvents, "every accepted event has a lag")
	require.Zero(t, rep.NotVisible)
	require.Equal(t, 2.0, rep.LagResolutionMs)
	require.Equal(t, 100, rep.UsersChecked)
	require.Zero(t, rep.UsersMismatched)
	require.NoError(t, rep.Verify())
	require.GreaterOrEqual(t, rep.Lag.Max, rep.Lag.P50)

	var schemas int
	conn := testdb.Pool(t, testdb.ServerURL())
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, rep.Schema).Scan(&schemas))
	require.Zero(t, schemas, "the bench schema is dropped afterwards")
}

func TestReportVerify(t *testing.T) {
	t.Parallel()
	require.NoError(t, Report{UsersChecked: 10}.Verify())
	require.EqualError(t, Report{NotVisible: 3, UsersChecked: 10}.Verify(), "3 accepted events never became visible in users")
	require.EqualError(t, Report{NotVisible: 3, UsersChecked: 10, UsersMismatched: 2}.Verify(),
		"3 accepted events never became visible in users; 2 of 10 users differ from in-order delivery")
}

// TestRunSmallBacklog drains a small backlog end to end and checks what
// the report says about it: every event delivered once and visible, the
// lags split between the backlog and the trickle after it.
func TestRunSmallBacklog(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds webhookd and runs it as a child process")
	}
	binary := filepath.Join(t.TempDir(), "webhookd")
	build := exec.Command("go", "build", "-o", binary, "github.com/webhookd/webhookd/cmd/webhookd")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build webhookd: %s", out)

	var log, childLog bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, BenchConfig{
		DatabaseURL: testdb.ServerURL(), Backlog: 500, Users: 100, Concurrency: 16,
		Binary: binary, Log: &log, ChildOutput: &childLog, ChildEnv: []string{"LOG_LEVEL=warn"},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bench log:\n%s\nchild log:\n%s", log.String(), childLog.String())
		}
	})
	require.NoError(t, err)
	total := 500 + trickleEvents()
	require.Equal(t, total, rep.Events)
	require.Equal(t, map[string]int{"200": total}, rep.Statuses)
	require.Zero(t, rep.NotVisible)
	require.Zero(t, rep.UsersMismatched)
	require.NoError(t, rep.Verify())
	b := rep.Backlog
	require.NotNil(t, b)
	require.Equal(t, 500, b.Events)
	require.Equal(t, 16, b.Concurrency)
	require.Equal(t, trickleEvents(), b.TrickleEvents)
	require.Equal(t, total, b.Attempts, "nothing was refused, so nothing was retried")
	require.Zero(t, b.Retries)
	require.Positive(t, b.DrainSeconds)
	require.Equal(t, rep.Ratio, b.Ratio)
	require.GreaterOrEqual(t, b.LagDuring.Max, b.LagDuring.P50)
	require.GreaterOrEqual(t, b.LagAfter.Max, b.LagAfter.P50)
	require.GreaterOrEqual(t, b.Delivery.P99, b.Delivery.P50)
}
