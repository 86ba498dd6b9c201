package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/loadgen"
)

// TestBenchSummarizePrintsOneRowPerRun: `webhookd bench --summarize`
// turns the JSON reports of a steady run and a backlog run into the
// README's table, each row against its own run's ceiling; a file that is
// not a report is an error naming it.
func TestBenchSummarizePrintsOneRowPerRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, r loadgen.Report) string {
		data, err := json.Marshal(r)
		require.NoError(t, err)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		return path
	}
	steady := write("c8.json", loadgen.Report{Events: 20000, Concurrency: 8, Ratio: 0.61,
		Webhookd: loadgen.Throughput{EventsPerSec: 2440, Latency: loadgen.Latency{P99: 12.5}}, Ceiling: loadgen.Throughput{EventsPerSec: 4000},
		Lag: loadgen.Latency{P50: 14, P99: 30}, AppendsPerInsert: 2.6, PeakRSSMiB: 40.2,
		CPU: loadgen.CPUPerEvent{Webhookd: 120, Postgres: 170}, CeilingCPU: loadgen.CPUPerEvent{Generator: 60, Postgres: 120}})
	backlog := write("backlog.json", loadgen.Report{Events: 100300, Concurrency: 64, Ratio: 1.1,
		Webhookd: loadgen.Throughput{EventsPerSec: 8000, Latency: loadgen.Latency{P99: 40}}, Ceiling: loadgen.Throughput{EventsPerSec: 7270},
		Backlog: &loadgen.Backlog{Events: 100000, Concurrency: 64, DrainSeconds: 12.5, CaughtUpMs: 35,
			LagDuring: loadgen.Latency{P50: 40, P99: 120}, LagAfter: loadgen.Latency{P50: 15, P99: 40}}})

	var out bytes.Buffer
	require.NoError(t, summarize(&out, []string{steady, backlog}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4)
	require.Equal(t, "| c=8, 20000 events | 2440/s | 4000/s | 0.61× | 12.5 ms | 14 / 30 ms | 2.6 | 120 / 170 µs (60 + 120 µs) | 40.2 MiB |", lines[2])
	require.Contains(t, lines[3], "| backlog of 100000 at c=64: drained in 12.5 s | 8000/s | 7270/s | 1.10× | 40.0 ms | during 40 / 120 ms; after 15 / 40 ms; caught up 35 ms after the last delivery |")

	notJSON := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notJSON, []byte("hello"), 0o600))
	err := summarize(&out, []string{notJSON})
	require.ErrorContains(t, err, notJSON)
}
