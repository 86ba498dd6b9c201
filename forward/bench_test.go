package forward_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/forward"
	"github.com/webhookd/webhookd/internal/natstest"
)

func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkForwardBacklog measures how fast a forwarder that starts
// behind a backlog of realistic Clerk events (user and organization
// events, 1–2 kB bodies) publishes it to JetStream, acknowledged, with its
// position committed after each batch. WEBHOOKD_BENCH_FORWARD_EVENTS sets
// the backlog (default 200,000).
//
//	go test ./forward/ -run '^$' -bench ForwardBacklog -benchtime 1x
func BenchmarkForwardBacklog(b *testing.B) {
	n := benchSize("WEBHOOKD_BENCH_FORWARD_EVENTS", 200_000)
	for range b.N {
		b.StopTimer()
		h := setup(b)
		rows := makeRows(b, "msg_bench", n, benchTypes)
		appendRows(b, h.db, rows, 5000)
		b.StartTimer()
		start := time.Now()
		f := h.start(func(c *forward.Config) { c.BatchSize = benchSize("WEBHOOKD_BENCH_FORWARD_BATCH", 0) })
		require.Eventually(b, func() bool {
			lag, err := f.MeasureLag(context.Background(), time.Now())
			return err == nil && lag.Events == 0
		}, 30*time.Minute, 5*time.Millisecond)
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
		b.ReportMetric(0, "ns/op")
		_, js := natstest.JetStream(b, h.url)
		s, err := js.Stream(context.Background(), h.stream)
		require.NoError(b, err)
		info, err := s.Info(context.Background())
		require.NoError(b, err)
		require.Equal(b, uint64(n), info.State.Msgs)
	}
}

// BenchmarkForwardLagSteady appends single entries at a steady rate
// (WEBHOOKD_BENCH_FORWARD_RATE, default 500/s, for
// WEBHOOKD_BENCH_FORWARD_SECONDS, default 20) while a JetStream consumer
// reads the stream, and reports the forwarding lag from each entry's
// receipt (its received_at, taken before the append commits) to its
// storage in the stream (the message's JetStream timestamp; same machine,
// same clock): p50, p99 and max; the p99 to its arrival at the consumer;
// and p50 and p99 from the append's commit (when the appender's INSERT
// returned) to the stream, the part the forwarder controls.
//
//	go test ./forward/ -run '^$' -bench ForwardLagSteady -benchtime 1x
func BenchmarkForwardLagSteady(b *testing.B) {
	rate := benchSize("WEBHOOKD_BENCH_FORWARD_RATE", 500)
	seconds := benchSize("WEBHOOKD_BENCH_FORWARD_SECONDS", 20)
	total := rate * seconds
	for range b.N {
		h := setup(b)
		rows := makeRows(b, "msg_lag", total, benchTypes)
		h.start(func(c *forward.Config) {
			c.PollInterval = time.Duration(benchSize("WEBHOOKD_BENCH_FORWARD_POLL_MS", 0)) * time.Millisecond
		})
		_, js := natstest.JetStream(b, h.url)
		var (
			committedAt sync.Map // svix-id → when its append returned (committed)
			mu          sync.Mutex
			lags        []time.Duration // receipt → stored in the stream (JetStream's timestamp)
			consumed    []time.Duration // receipt → at the consumer
			stored      []time.Time     // JetStream's timestamp, by svix-id below
			ids         []string
		)
		got := make(chan struct{}, total)
		// The stream exists once the forwarder led; the first entry makes
		// sure of that before the consumer starts.
		appendRows(b, h.db, rows[:1], 1)
		var stream jetstream.Stream
		require.Eventually(b, func() bool {
			var err error
			stream, err = js.Stream(context.Background(), h.stream)
			return err == nil
		}, time.Minute, 10*time.Millisecond)
		cons, err := stream.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
		require.NoError(b, err)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			arrived := time.Now()
			at, err := time.Parse(time.RFC3339Nano, m.Headers().Get(forward.HeaderReceivedAt))
			md, merr := m.Metadata()
			if err == nil && merr == nil {
				mu.Lock()
				lags = append(lags, md.Timestamp.Sub(at))
				consumed = append(consumed, arrived.Sub(at))
				stored = append(stored, md.Timestamp)
				ids = append(ids, m.Headers().Get(forward.HeaderSvixID))
				mu.Unlock()
			}
			got <- struct{}{}
		})
		require.NoError(b, err)
		defer cc.Stop()
		b.ResetTimer()
		began := time.Now()
		// One append per tick, by a pool of appenders: a single one would
		// fall behind the rate whenever a commit takes longer than a tick.
		jobs := make(chan row, total)
		var appenders sync.WaitGroup
		for range 8 {
			appenders.Go(func() {
				for r := range jobs {
					appendRows(b, h.db, []row{r}, 1)
					committedAt.Store(r.svixID, time.Now())
				}
			})
		}
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for _, r := range rows[1:] {
			<-tick.C
			jobs <- r
		}
		tick.Stop()
		close(jobs)
		appenders.Wait()
		achieved := float64(total-1) / time.Since(began).Seconds()
		for range total - 1 {
			select {
			case <-got:
			case <-time.After(time.Minute):
				b.Fatalf("the consumer got %d of %d entries", len(lags), total-1)
			}
		}
		b.StopTimer()
		mu.Lock()
		// From the append's commit (as the appender saw it return) to the
		// stream: the part the forwarder controls.
		var fromCommit []time.Duration
		for i, id := range ids {
			if c, ok := committedAt.Load(id); ok {
				fromCommit = append(fromCommit, max(0, stored[i].Sub(c.(time.Time))))
			}
		}
		slices.Sort(lags)
		slices.Sort(consumed)
		slices.Sort(fromCommit)
		q := func(d []time.Duration, p float64) float64 {
			return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(q(lags, 0.5), "p50_ms")
		b.ReportMetric(q(lags, 0.99), "p99_ms")
		b.ReportMetric(q(lags, 1), "max_ms")
		b.ReportMetric(q(consumed, 0.99), "consumer_p99_ms")
		b.ReportMetric(q(fromCommit, 0.5), "commit_p50_ms")
		b.ReportMetric(q(fromCommit, 0.99), "commit_p99_ms")
		b.ReportMetric(float64(len(lags)), "entries")
		b.ReportMetric(achieved, "appended/s")
		b.ReportMetric(0, "ns/op")
		mu.Unlock()
	}
}

// benchTypes are the event types of the benchmarks' ledger: what a
// practice's Clerk instance sends most.
var benchTypes = []string{"user.created", "user.updated", "user.updated", "user.deleted", "organization.updated", "organizationMembership.created"}
