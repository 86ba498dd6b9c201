package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// BenchmarkLiveProjection times each live projection catching up alone on
// a ledger of b.N realistic events of its own (created, then updates) over
// b.N/10 subjects, with nothing else running.
//
//	go test -run x -bench LiveProjection -benchtime 20000x ./projections/
func BenchmarkLiveProjection(b *testing.B) {
	for _, m := range projections.All() {
		b.Run(m.Name(), func(b *testing.B) { benchmarkLiveProjection(b, m) })
	}
}

func benchmarkLiveProjection(b *testing.B, m projections.ReadModel) {
	db := testdb.New(b)
	loadSyntheticLedger(b, db, b.N, max(1, b.N/10), m.Name())
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: db.Pool, Projections: []projections.Projection{m}, Logger: quiet})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for {
		lag, err := projections.MeasureLag(context.Background(), db.Pool, m.Name(), time.Now())
		require.NoError(b, err)
		if lag.Events == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}
