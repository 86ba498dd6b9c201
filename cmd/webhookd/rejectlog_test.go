package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// logLines returns the JSON log lines whose msg is msg.
func (h *harness) logLines(msg string) []map[string]any {
	h.t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(h.t, json.Unmarshal([]byte(l), &m))
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestRejectedRequestLogsAreAggregated: a flood of rejected requests
// writes one full line per source, event and reason per interval and one
// summary line with the count of the others when the interval ends, while
// the metrics count every request. The clock is the handler's, moved by
// the test.
func TestRejectedRequestLogsAreAggregated(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Now().UTC().Truncate(time.Second).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	h := start(t, withConfig(func(c *AppConfig) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		c.RejectLogEvery = 10 * time.Second
	}))
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 6})
	forger, prober := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")

	// 100 forged deliveries from one address: its burst (20) is answered
	// 401, the rest 429. 30 without headers and 5 to a wrong path from
	// another.
	for i := range 100 {
		h.postFrom(forger, signed(t, otherSecret, fmt.Sprintf("msg_flood_%d", i), h.now, body), body)
	}
	for range 30 {
		h.postFrom(prober, http.Header{"Content-Type": {"application/json"}}, body)
	}
	for range 5 {
		resp, err := prober.Get(h.base + "/wp-login.php")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	// A valid delivery is logged as always.
	require.Equal(t, http.StatusOK, h.postFrom(forger, signed(t, testSecret, "msg_valid", h.now, body), body).status)

	full := func(msg, addr, reason string) int {
		n := 0
		for _, l := range h.logLines(msg) {
			if l["remote_addr"] == addr && l["reason"] == reason {
				require.Regexp(t, `^ERR_`, l["error_id"])
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, full("signature_rejected", "127.0.0.2", "no_matching_signature"))
	require.Equal(t, 1, full("rate_limited", "127.0.0.2", "too_many_failures"))
	require.Equal(t, 1, full("event_invalid", "127.0.0.3", "missing_headers"))
	require.Equal(t, 1, full("rate_limited", "127.0.0.3", "too_many_failures"))
	require.Equal(t, 1, full("route_not_found", "127.0.0.3", "route_not_found"))
	require.Len(t, h.logLines("event_appended"), 1)
	require.Empty(t, h.logLines("rejections_suppressed"), "the interval has not ended")

	// The metrics count every request.
	m := scrape(t, h)
	require.EqualValues(t, 20, m.value(`webhookd_webhook_requests_total{outcome="signature_rejected"}`))
	require.EqualValues(t, 80+10, m.value(`webhookd_webhook_requests_total{outcome="rate_limited"}`))
	require.EqualValues(t, 20, m.value(`webhookd_webhook_requests_total{outcome="event_invalid"}`))
	require.EqualValues(t, 100, m.value(`webhookd_verification_failures_total{reason="no_matching_signature"}`))
	require.EqualValues(t, 20, m.value(`webhookd_verification_failures_total{reason="missing_headers"}`))

	// The interval ends; the next rejection writes the summary first, and
	// is itself the first of a new interval (10 s refilled 10 tokens of
	// the forger's bucket, so it is a 401 again).
	advance(10 * time.Second)
	h.postFrom(forger, signed(t, otherSecret, "msg_flood_next", h.now, body), body)
	h.postFrom(forger, signed(t, otherSecret, "msg_flood_next2", h.now, body), body)
	summaries := map[string]float64{}
	for _, l := range h.logLines("rejections_suppressed") {
		require.Equal(t, "WARN", l["level"])
		summaries[fmt.Sprintf("%s %s %s %v", l["remote_addr"], l["event"], l["reason"], l["status"])] = l["count"].(float64)
	}
	require.Equal(t, map[string]float64{
		"127.0.0.2 signature_rejected no_matching_signature 401": 19,
		"127.0.0.2 rate_limited too_many_failures 429":           79,
		"127.0.0.3 event_invalid missing_headers 400":            19,
		"127.0.0.3 rate_limited too_many_failures 429":           9,
		"127.0.0.3 route_not_found route_not_found 404":          4,
	}, summaries)
	require.Equal(t, 2, full("signature_rejected", "127.0.0.2", "no_matching_signature"))

	// At shutdown the open interval is summarised (one suppressed: the
	// second request above).
	h.stop()
	lines := h.logLines("rejections_suppressed")
	require.Len(t, lines, 6)
	last := lines[5]
	require.Equal(t, "signature_rejected", last["event"])
	require.EqualValues(t, 1, last["count"])
}
