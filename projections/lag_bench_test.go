package projections_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// BenchmarkVisibilityLag appends b.N user.created events at a steady 200
// per second while the users projection runs, and reports how long each
// took from its append committing to its row being visible in users
// (p50, p99, max), as an application reading users would see it.
//
//	go test -run x -bench VisibilityLag -benchtime 3000x ./projections/
func BenchmarkVisibilityLag(b *testing.B) {
	const rate = 200
	db := testdb.New(b)
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(b, err)
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: db.Pool, Projections: projections.Projections(), Logger: quiet})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()

	bodies := make([][]byte, b.N)
	ids := make([]string, b.N)
	for i := range bodies {
		ids[i] = fmt.Sprintf("user_lag%07d", i)
		bodies[i] = clerkfake.MustBuild(domain.EventUserCreated, clerkfake.Options{ID: ids[i], Seed: int64(i + 1)})
	}

	var (
		mu        sync.Mutex
		committed = map[string]time.Time{}
		lags      []time.Duration
	)
	// One watcher polls for the rows still pending, every 2 ms.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			mu.Lock()
			pending := make([]string, 0, len(committed))
			for id := range committed {
				pending = append(pending, id)
			}
			finished := len(lags) == b.N
			mu.Unlock()
			if finished {
				return
			}
			if len(pending) > 0 {
				rows, err := db.Pool.Query(context.Background(), `SELECT clerk_id FROM users WHERE clerk_id = ANY($1)`, pending)
				if err == nil {
					now := time.Now()
					var id string
					mu.Lock()
					for rows.Next() {
						if rows.Scan(&id) == nil {
							lags = append(lags, now.Sub(committed[id]))
							delete(committed, id)
						}
					}
					mu.Unlock()
					rows.Close()
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	for i := range b.N {
		<-tick.C
		env, err := domain.ParseEnvelope(bodies[i])
		require.NoError(b, err)
		_, err = store.Append(context.Background(), domain.LedgerEntry{
			SvixID: fmt.Sprintf("msg_lag%07d", i), SvixTimestamp: time.Now(), Signature: "v1,x", Source: domain.SourceClerk,
			EventType: env.Type, SubjectID: env.SubjectID, InstanceID: env.InstanceID, EventTime: env.Time,
			TimestampUnit: env.TimestampUnit, ReceivedAt: time.Now(), Payload: bodies[i],
		})
		require.NoError(b, err)
		mu.Lock()
		committed[ids[i]] = time.Now()
		mu.Unlock()
	}
	tick.Stop()
	<-watchDone
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)

	slices.Sort(lags)
	pct := func(p float64) float64 { return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(0, "ns/op")
}
