package loadgen

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
