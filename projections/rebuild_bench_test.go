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

// syntheticKinds are the read models loadSyntheticLedger can fill a
// ledger for: the id prefix and event types of each.
var syntheticKinds = map[string]struct{ prefix, created, updated, deleted, object string }{
	"users":       {"user_bench", domain.EventUserCreated, domain.EventUserUpdated, domain.EventUserDeleted, "user"},
	"practices":   {"org_bench", domain.EventOrganizationCreated, domain.EventOrganizationUpdated, domain.EventOrganizationDeleted, "organization"},
	"memberships": {"orgmem_bench", domain.EventMembershipCreated, domain.EventMembershipUpdated, domain.EventMembershipDeleted, ""},
}

// loadSyntheticLedger COPYs events synthetic events of a read model
// (users, practices or memberships) into the ledger: per subject one
// *.created, then *.updated events with rising updated_at, and a
// *.deleted for one subject in twenty. Bodies are realistic Clerk payloads
// (users about 1.5 KB, organizations 0.9 KB, memberships 1.6 KB).
func loadSyntheticLedger(b *testing.B, db *testdb.DB, events, subjects int, kind string) {
	b.Helper()
	k := syntheticKinds[kind]
	templates := make([][]byte, subjects)
	for u := range subjects {
		templates[u] = clerkfake.MustBuild(k.updated, clerkfake.Options{
			ID: fmt.Sprintf("%s%07d", k.prefix, u), Seed: int64(u + 1), Time: t0})
	}
	// Clerk's user and organization deletions carry only the id; a
	// membership's carries the membership.
	deleted := []byte(`{"data":{"deleted":true,"id":"%s","object":"` + k.object + `"},"instance_id":"ins_bench","object":"event","timestamp":%d,"type":"` + k.deleted + `"}`)
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
				u, n := i%subjects, i/subjects
				id := fmt.Sprintf("%s%07d", k.prefix, u)
				at := t0.Add(time.Duration(n) * time.Minute)
				typ := k.updated
				var body []byte
				switch {
				case n == 0:
					typ = k.created
					body = bytes.Replace(templates[u], []byte(`"type":"`+k.updated+`"`), []byte(`"type":"`+k.created+`"`), 1)
				case u%20 == 0 && i+subjects >= events && k.object != "":
					typ = k.deleted
					body = fmt.Appendf(nil, string(deleted), id, at.UnixMilli())
				case u%20 == 0 && i+subjects >= events:
					typ = k.deleted
					body = bytes.Replace(updatedAtPattern.ReplaceAll(templates[u], fmt.Appendf(nil, `"updated_at":%d`, at.UnixMilli())),
						[]byte(`"type":"`+k.updated+`"`), []byte(`"type":"`+k.deleted+`"`), 1)
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

// BenchmarkRebuild times a full rebuild of each read model from a
// synthetic ledger of its own events: WEBHOOKD_BENCH_EVENTS events
// (default 1,000,000) over WEBHOOKD_BENCH_USERS subjects (default
// 100,000).
//
//	make bench-replay
func BenchmarkRebuild(b *testing.B) {
	for _, m := range projections.All() {
		b.Run(m.Name(), func(b *testing.B) { benchmarkRebuild(b, m) })
	}
}

func benchmarkRebuild(b *testing.B, m projections.ReadModel) {
	events, subjects := envInt("WEBHOOKD_BENCH_EVENTS", 1_000_000), envInt("WEBHOOKD_BENCH_USERS", 100_000)
	db := testdb.New(b)
	loadStart := time.Now()
	loadSyntheticLedger(b, db, events, subjects, m.Name())
	_, err := db.Pool.Exec(context.Background(), `ANALYZE ledger_events`)
	require.NoError(b, err)
	var size string
	require.NoError(b, db.Pool.QueryRow(context.Background(), `SELECT pg_size_pretty(pg_total_relation_size('ledger_events'))`).Scan(&size))
	b.Logf("loaded %d %s events over %d subjects (%s) in %s", events, m.Name(), subjects, size, time.Since(loadStart).Round(time.Second))

	b.ResetTimer()
	var report projections.RebuildReport
	for range b.N {
		report, err = projections.Rebuild(context.Background(), projections.RebuildConfig{Pool: db.Pool, Logger: quiet}, m, false)
		require.NoError(b, err)
	}
	b.StopTimer()
	require.EqualValues(b, events, report.Entries)
	require.EqualValues(b, subjects, report.Rows)
	require.Empty(b, report.Skipped)
	b.ReportMetric(float64(report.Entries)/report.Duration, "events/s")
	b.ReportMetric(report.Duration, "s/rebuild")
}
