package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// BenchmarkLiveProjection times the live users projection catching up on
// a ledger of b.N realistic user events (created, then updates) over
// b.N/10 users, with nothing else running.
//
//	go test -run x -bench LiveProjection -benchtime 20000x ./projections/
func BenchmarkLiveProjection(b *testing.B) {
	db := testdb.New(b)
	loadSyntheticLedger(b, db, b.N, max(1, b.N/10))
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: db.Pool, Projections: projections.Projections(), Logger: quiet})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for {
		lag, err := projections.MeasureLag(context.Background(), db.Pool, "users", time.Now())
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
