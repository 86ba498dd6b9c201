package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var updatedAtPattern = regexp.MustCompile(`"updated_at":\d+`)

// loadSyntheticLedger COPYs events synthetic user events into the ledger:
// per user one user.created, then user.updated events with rising
// updated_at, and a user.deleted for one user in twenty. Bodies are
// realistic Clerk payloads (about 1.5 KB).
func loadSyntheticLedger(b *testing.B, db *testdb.DB, events, users int) {
	b.Helper()
	templates := make([][]byte, users)
	for u := range users {
		templates[u] = clerkfake.MustBuild(domain.EventUserUpdated, clerkfake.Options{
			ID: fmt.Sprintf("user_bench%07d", u), Seed: int64(u + 1), Time: t0})
	}
	deleted := []byte(`{"data":{"deleted":true,"id":"%s","object":"user"},"instance_id":"ins_bench","object":"event","timestamp":%d,"type":"user.deleted"}`)
	now := time.Now()
	const chunk = 50_000
	for start := 0; start < events; start += chunk {
		i := start
		end := min(start+chunk, events)
		_, err := db.Pool.CopyFrom(context.Background(), pgx.Identifier{"ledger_events"},
			[]string{"uuid", "svix_id", "source", "svix_timestamp", "signature", "event_type", "subject_id", "instance_id",
				"event_time", "timestamp_unit", "received_at", "payload"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i >= end {
					return nil, nil
				}
				u, k := i%users, i/users
				id := fmt.Sprintf("user_bench%07d", u)
				at := t0.Add(time.Duration(k) * time.Minute)
				typ := domain.EventUserUpdated
				var body []byte
				switch {
				case k == 0:
					typ = domain.EventUserCreated
					body = bytes.Replace(templates[u], []byte(`"type":"user.updated"`), []byte(`"type":"user.created"`), 1)
				case u%20 == 0 && i+users >= events:
					typ = domain.EventUserDeleted
					body = fmt.Appendf(nil, string(deleted), id, at.UnixMilli())
				default:
					body = updatedAtPattern.ReplaceAll(templates[u], fmt.Appendf(nil, `"updated_at":%d`, at.UnixMilli()))
				}
				i++
				return []any{uuid.NewString(), fmt.Sprintf("msg_bench%09d", i), "clerk", now, "v1,bench", typ, id, "ins_bench",
					at, "ms", now, body}, nil
			}))
		require.NoError(b, err)
	}
}

// BenchmarkRebuildUsers times a full rebuild of users from a synthetic
// ledger: WEBHOOKD_BENCH_EVENTS events (default 1,000,000) over
// WEBHOOKD_BENCH_USERS users (default 100,000).
//
//	make bench-replay
func BenchmarkRebuildUsers(b *testing.B) {
	events, users := envInt("WEBHOOKD_BENCH_EVENTS", 1_000_000), envInt("WEBHOOKD_BENCH_USERS", 100_000)
	db := testdb.New(b)
	loadStart := time.Now()
	loadSyntheticLedger(b, db, events, users)
	_, err := db.Pool.Exec(context.Background(), `ANALYZE ledger_events`)
	require.NoError(b, err)
	var size string
	require.NoError(b, db.Pool.QueryRow(context.Background(), `SELECT pg_size_pretty(pg_total_relation_size('ledger_events'))`).Scan(&size))
	b.Logf("loaded %d events over %d users (%s) in %s", events, users, size, time.Since(loadStart).Round(time.Second))

	b.ResetTimer()
	var report projections.RebuildReport
	for range b.N {
		report, err = projections.Rebuild(context.Background(), projections.RebuildConfig{Pool: db.Pool, Logger: quiet}, projections.Users, false)
		require.NoError(b, err)
	}
	b.StopTimer()
	require.EqualValues(b, events, report.Entries)
	require.EqualValues(b, users, report.Rows)
	b.ReportMetric(float64(report.Entries)/report.Duration, "events/s")
	b.ReportMetric(report.Duration, "s/rebuild")
}
