package projections_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// BenchmarkCanaryAfterPoison measures what a valid user's event pays for
// sitting right behind hostile ones. Each round appends a profile with NUL
// in every string and an 8 kB email (which PostgreSQL refused before),
// then an entry that can never be applied (first_name is a number: tried
// MaxAttempts times, recorded, skipped), then the canary, a valid
// user.created; it reports how long the canary took from its append to its
// row in users (p50, max). After the rounds it rebuilds users from that
// ledger (`webhookd replay users`) and reports the time and the entries
// skipped; every canary and every NUL profile must be in the rebuilt table.
//
//	go test -run x -bench CanaryAfterPoison -benchtime 50x ./projections/
func BenchmarkCanaryAfterPoison(b *testing.B) {
	db := testdb.New(b)
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(b, err)
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: db.Pool, Projections: projections.Projections(), Logger: quiet})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()

	seq := 0
	appendBody := func(body string) {
		seq++
		env, err := domain.ParseEnvelope([]byte(body))
		require.NoError(b, err)
		_, err = store.Append(context.Background(), domain.LedgerEntry{
			SvixID: fmt.Sprintf("msg_p%07d", seq), SvixTimestamp: time.Now(), Signature: "v1,x", Source: domain.SourceClerk,
			EventType: env.Type, SubjectID: env.SubjectID, InstanceID: env.InstanceID, EventTime: env.Time,
			TimestampUnit: env.TimestampUnit, ReceivedAt: time.Now(), Payload: []byte(body),
		})
		require.NoError(b, err)
	}
	longEmail := strings.Repeat("0123456789abcdef", 512) + "@example.com"
	var lags []time.Duration
	b.ResetTimer()
	for i := range b.N {
		appendBody(clerkBody(domain.EventUserCreated, t0, fmt.Sprintf(
			`{"id":"user_nul%05d","first_name":"Ja\u0000ne","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"%d%s"}]}`, i, i, longEmail)))
		appendBody(clerkBody(domain.EventUserUpdated, t0, fmt.Sprintf(`{"id":"user_poison%05d","first_name":5}`, i)))
		canary := fmt.Sprintf("user_canary%05d", i)
		appendBody(clerkBody(domain.EventUserCreated, t0, `{"id":"`+canary+`","first_name":"Canary"}`))
		appended := time.Now()
		for {
			var n int
			require.NoError(b, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE clerk_id = $1`, canary).Scan(&n))
			if n == 1 {
				lags = append(lags, time.Since(appended))
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	cancel()
	require.NoError(b, <-done)

	start := time.Now()
	report, err := projections.Rebuild(context.Background(), projections.RebuildConfig{Pool: db.Pool, Logger: quiet}, projections.Users, false)
	require.NoError(b, err)
	rebuild := time.Since(start)
	require.Len(b, report.Skipped, b.N)
	var rows int
	require.NoError(b, db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM users WHERE clerk_id LIKE 'user_canary%' OR (clerk_id LIKE 'user_nul%' AND first_name = E'Ja\uFFFDne')`).Scan(&rows))
	require.Equal(b, 2*b.N, rows)

	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lags[len(lags)/2]), "canary-p50-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "canary-max-ms")
	b.ReportMetric(ms(rebuild), "rebuild-ms")
	b.ReportMetric(float64(len(report.Skipped)), "rebuild-skipped")
	b.ReportMetric(0, "ns/op")
}
