package loadgen

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
)

func TestPerEvent(t *testing.T) {
	t.Parallel()
	from := cpuSample{generator: time.Second, webhookd: 2 * time.Second, postgres: 3 * time.Second}
	to := cpuSample{generator: 2 * time.Second, webhookd: 4 * time.Second, postgres: 6 * time.Second}
	require.Equal(t, CPUPerEvent{Generator: 100, Webhookd: 200, Postgres: 300, Total: 600}, perEvent(from, to, 10_000))
}

func TestCPUTimeOfThisProcess(t *testing.T) {
	t.Parallel()
	before, err := cpuTime(os.Getpid())
	require.NoError(t, err)
	deadline := time.Now().Add(100 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, err := cpuTime(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, after, before, "100 ms of spinning shows in /proc/self/stat")

	_, err = cpuTime(1 << 30)
	require.Error(t, err, "no such process")
}

// TestPostgresCPUCountsOnlyTheTestServer: the CPU of the test server's
// processes is found from a backend's pid, and excludes processes of
// other servers (those of every process named postgres include it).
func TestPostgresCPUCountsOnlyTheTestServer(t *testing.T) {
	t.Parallel()
	conn := testdb.Pool(t, testdb.ServerURL())
	var backend int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend))
	postmaster := postmasterOf(backend)
	if postmaster == 0 {
		t.Skip("the test PostgreSQL does not run on this machine")
	}
	ppid, err := parentPID(backend)
	require.NoError(t, err)
	require.Equal(t, postmaster, ppid)
	require.Zero(t, postmasterOf(os.Getpid()), "this process is no PostgreSQL backend")
	// Spin the backend, so its server has CPU time to count.
	_, err = conn.Exec(context.Background(), `SELECT count(*) FROM generate_series(1, 300000)`)
	require.NoError(t, err)
	mine, all := postgresCPU(postmaster), postgresCPU(0)
	require.Positive(t, mine)
	require.GreaterOrEqual(t, all, mine)
}
