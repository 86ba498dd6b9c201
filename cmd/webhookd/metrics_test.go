package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// samples is one scrape of /metrics: series name{label="value",...}
// (labels sorted) to value. Histograms appear as _count and _sum series.
type samples map[string]float64

func (s samples) value(series string) float64 { return s[series] }

func (s samples) has(name string) bool {
	for k := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			return true
		}
	}
	return false
}

func scrape(t *testing.T, h *harness) samples {
	t.Helper()
	resp, err := http.Get(h.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := samples{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := func(n string) string {
				if len(labels) == 0 {
					return n
				}
				return n + "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key(name)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key(name)] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key(name+"_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key(name+"_sum")] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_UNTYPED:
				out[key(name)] = m.GetUntyped().GetValue()
			case dto.MetricType_SUMMARY:
				out[key(name+"_count")] = float64(m.GetSummary().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsAfterDeliveries(t *testing.T) {
	t.Parallel()
	h := start(t)
	user := fixture(t, "user.created.json")
	require.Equal(t, "accepted", h.deliver("msg_m1", user).body["status"])
	require.Equal(t, "duplicate", h.deliver("msg_m1", user).body["status"])
	// A type Clerk does not document is stored but counted as "other".
	odd := []byte(`{"object":"event","type":"custom.thing","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"x_1"}}`)
	require.Equal(t, "accepted", h.deliver("msg_m2", odd).body["status"])
	require.Equal(t, http.StatusUnauthorized, h.post(h.url, signed(t, otherSecret, "msg_m3", h.now, user), user).status)
	require.Equal(t, http.StatusBadRequest, h.post(h.url, http.Header{}, user).status)
	notEvent := []byte(`{"hello":"world"}`)
	require.Equal(t, http.StatusBadRequest, h.deliver("msg_m4", notEvent).status)

	// The projection applies both entries (the users projection skips
	// the custom type, which counts as applied).
	require.Eventually(t, func() bool {
		m := scrape(t, h)
		return m.value(`webhookd_projection_applied_total{projection="users"}`) == 2 &&
			m.value(`webhookd_projection_batch_duration_seconds_count{outcome="committed",projection="users"}`) >= 1 &&
			m.value(`webhookd_projection_lag_events{projection="users"}`) == 0
	}, 10*time.Second, 10*time.Millisecond)

	m := scrape(t, h)
	for series, want := range map[string]float64{
		`webhookd_webhook_requests_total{outcome="event_appended"}`:            2,
		`webhookd_webhook_requests_total{outcome="event_duplicate"}`:           1,
		`webhookd_webhook_requests_total{outcome="signature_rejected"}`:        1,
		`webhookd_webhook_requests_total{outcome="event_invalid"}`:             2,
		`webhookd_verification_failures_total{reason="no_matching_signature"}`: 1,
		`webhookd_verification_failures_total{reason="missing_headers"}`:       1,
		`webhookd_events_total{type="user.created"}`:                           1,
		`webhookd_events_total{type="other"}`:                                  1,
		`webhookd_ledger_duplicates_total`:                                     1,
		`webhookd_ledger_append_duration_seconds_count{result="appended"}`:     2,
		`webhookd_ledger_append_duration_seconds_count{result="duplicate"}`:    1,
		`webhookd_ledger_batch_entries_count`:                                  3,
		`webhookd_ledger_batch_entries_sum`:                                    3,
		`webhookd_webhook_requests_in_flight`:                                  0,
		`webhookd_projection_lag_events{projection="users"}`:                   0,
		`webhookd_projection_lag_seconds{projection="users"}`:                  0,
		`webhookd_projection_lag_up`:                                           1,
		`webhookd_db_pool_max_conns`:                                           float64(maxConns(t, h)),
	} {
		require.Equal(t, want, m.value(series), series)
	}
	// Outcomes that did not happen are there at zero, so that their
	// first occurrence is an increase an alert sees.
	require.Len(t, seriesOf(m, "webhookd_webhook_requests_total"), 9)
	for _, series := range []string{
		`webhookd_webhook_requests_total{outcome="append_failed"}`,
		`webhookd_webhook_requests_total{outcome="overloaded"}`,
		`webhookd_webhook_requests_total{outcome="read_limited"}`,
		`webhookd_verification_failures_total{reason="body_unreadable"}`,
		`webhookd_webhook_body_reads_in_flight`,
		`webhookd_verification_failures_total{reason="timestamp_too_old"}`,
		`webhookd_projection_failures_total{outcome="skipped",projection="users"}`,
		`webhookd_ledger_append_duration_seconds_count{result="error"}`,
	} {
		v, ok := m[series]
		require.True(t, ok, series)
		require.Zero(t, v, series)
	}
	require.Greater(t, m.value("webhookd_db_pool_acquires_total"), 0.0)
	require.Greater(t, m.value("webhookd_db_pool_total_conns"), 0.0)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		require.True(t, m.has(name), name)
	}
}

func seriesOf(m samples, name string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, name+"{") {
			out = append(out, k)
		}
	}
	return out
}

// maxConns is the pool size webhookd opens for the test database.
func maxConns(t *testing.T, h *harness) int32 {
	t.Helper()
	pool, err := openPool(context.Background(), h.db.URL)
	require.NoError(t, err)
	defer pool.Close()
	return pool.Config().MaxConns
}

func TestClerkEventTypesMatchClerkfake(t *testing.T) {
	t.Parallel()
	require.Equal(t, clerkfake.Types, ingress.ClerkEventTypes)
}

func TestReadyzFailsOnProjectionLag(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var skew atomic.Int64 // nanoseconds
	base := time.Now().UTC().Truncate(time.Second)
	h := startOn(t, db, withConfig(func(c *AppConfig) {
		c.Now = func() time.Time { return base.Add(time.Duration(skew.Load())) }
	}))
	h.now = base
	require.Equal(t, http.StatusOK, h.get("/readyz").status)

	// Stall the users projection: it cannot write while the table is
	// locked, so the entry stays unapplied.
	ctx := context.Background()
	lock, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer lock.Rollback(ctx)
	_, err = lock.Exec(ctx, `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, h.deliver("msg_lag", fixture(t, "user.created.json")).status)
	// Within the limit (1m) it is still ready, with the lag shown.
	// (The other projections take the entry, which is not theirs, at once.)
	skew.Store(int64(30 * time.Second))
	var a answer
	require.Eventually(t, func() bool {
		a = h.get("/readyz")
		return a.status == http.StatusOK && assert.ObjectsAreEqual([]any{
			map[string]any{"projection": "users", "events": 1.0, "seconds": 30.0},
			map[string]any{"projection": "practices", "events": 0.0, "seconds": 0.0},
			map[string]any{"projection": "memberships", "events": 0.0, "seconds": 0.0},
		}, a.body["checks"].(map[string]any)["projections"])
	}, 10*time.Second, 10*time.Millisecond, "readyz: %v", a.body)

	skew.Store(int64(2 * time.Minute))
	a = h.get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, a.status)
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.Equal(t, map[string]any{"status": "not_ready", "checks": map[string]any{
		"database": "ok", "migrations": "ok",
		"projections":        "projection users is 1 events and 120s behind the ledger (limit 1m0s)",
		"ledger_append_lock": "ok",
		"sealer":             "disabled",
		"forwarder":          "disabled",
	}}, a.body)
	m := scrape(t, h)
	require.Equal(t, 1.0, m.value(`webhookd_projection_lag_events{projection="users"}`))
	require.Equal(t, 120.0, m.value(`webhookd_projection_lag_seconds{projection="users"}`))

	// Unblocked, the projection catches up and webhookd is ready again.
	require.NoError(t, lock.Rollback(ctx))
	require.Eventually(t, func() bool { return h.get("/readyz").status == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
}
