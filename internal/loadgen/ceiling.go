package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// CeilingTable is the scratch table the ceiling measurement inserts into:
// a copy of ledger_events with the same columns and indexes (but not its
// triggers, so inserts are not serialised), in the benchmark's schema.
const CeilingTable = "bench_ceiling"

// ceilingInsert is one single-row INSERT of the ledger's columns, in its
// own transaction (autocommit). The ledger's triggers assign "offset" and
// transaction_id; the copy has no triggers, so the INSERT does.
const ceilingInsert = `INSERT INTO ` + CeilingTable + ` (uuid, payload, metadata, svix_id, source, svix_timestamp, signature, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, source_ip, transaction_id, "offset")
VALUES ($1, $2, NULL, $3, 'clerk', $4, $5, $6, $7, $8, $9, $10, now(), '127.0.0.1', pg_current_xact_id(), nextval('` + CeilingTable + `_offset_seq'))`

// Throughput is the outcome of sending events at a fixed concurrency.
type Throughput struct {
	Events       int     `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	Latency      Latency `json:"latency"`
}

// measureCeiling inserts every event into CeilingTable with concurrency
// connections, one row per transaction: the database's own limit for
// webhookd's write, without HTTP, verification or Watermill.
func measureCeiling(ctx context.Context, pool *pgxpool.Pool, events []Event, concurrency int) (Throughput, error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE `+CeilingTable+` (LIKE ledger_events INCLUDING ALL); CREATE SEQUENCE `+CeilingTable+`_offset_seq`); err != nil {
		return Throughput{}, fmt.Errorf("create %s: %w", CeilingTable, err)
	}
	type row struct{ args []any }
	rows := make([]row, len(events))
	for i, e := range events {
		env, err := domain.ParseEnvelope(e.Body)
		if err != nil {
			return Throughput{}, err
		}
		sig := ""
		if e.Header != nil {
			sig = e.Header.Get(clerkfake.HeaderSignature)
		}
		rows[i].args = []any{fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), e.Body, e.MsgID, time.Now().UTC(), sig,
			env.Type, env.SubjectID, env.InstanceID, env.Time, env.TimestampUnit}
	}
	latencies := make([]time.Duration, len(events))
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(rows) {
					return
				}
				t0 := time.Now()
				if _, err := pool.Exec(ctx, ceilingInsert, rows[i].args...); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				latencies[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return Throughput{}, fmt.Errorf("ceiling insert: %w", firstErr)
	}
	return Throughput{
		Events:       len(events),
		Seconds:      elapsed.Seconds(),
		EventsPerSec: float64(len(events)) / elapsed.Seconds(),
		Latency:      Summarize(latencies),
	}, nil
}
