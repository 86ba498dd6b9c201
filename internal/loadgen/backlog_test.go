package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// TestBacklogSenderRetriesEveryNon2xxAsSvix sends a backlog to a receiver
// that refuses each message's first attempt (503, or for one in three
// drops the connection) and any signature older than Svix's five-minute
// tolerance, with a backlog signed an hour ago: every event ends delivered
// exactly once with 2xx, retried with the same svix-id and a fresh
// signature.
func TestBacklogSenderRetriesEveryNon2xxAsSvix(t *testing.T) {
	t.Parallel()
	secret := clerkfake.NewSecret()
	events, err := Generate(WorkloadConfig{Events: 60, Users: 10})
	require.NoError(t, err)
	// Signed long ago: a receiver with Svix's tolerance refuses these,
	// so only re-signed retries pass.
	require.NoError(t, Sign(events, secret, time.Now().Add(-time.Hour)))

	var mu sync.Mutex
	attempts := map[string]int{}
	accepted := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(clerkfake.HeaderID)
		mu.Lock()
		defer mu.Unlock()
		attempts[id]++
		n := attempts[id]
		switch {
		case n == 1 && len(attempts)%3 == 0:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		case n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ts := r.Header.Get(clerkfake.HeaderTimestamp)
		if !strings.Contains(string(body), `"object"`) || ts == "" || tooOld(ts) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		accepted[id]++
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	requests, err := wireRequests(srv.URL+"/webhooks/clerk", events)
	require.NoError(t, err)
	s := &backlogSender{addr: srv.Listener.Addr().String(), secret: secret, target: srv.URL + "/webhooks/clerk",
		events: events, requests: requests, w: newPositionWatcher(nil, len(events)), statuses: map[int]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, deliveries, last := s.send(ctx, 0, len(events), 8)
	require.False(t, last.IsZero())
	for i, e := range events {
		require.Equal(t, 1, accepted[e.MsgID], "event %d accepted once", i)
		require.False(t, s.w.acceptedAt[i].IsZero(), "event %d recorded as accepted", i)
		require.GreaterOrEqual(t, deliveries[i], retryBackoff, "event %d waited for its retry", i)
	}
	st := s.nonOK()
	require.Equal(t, len(events), st["503"]+st["connection_error"], "every first attempt was refused")
	require.Positive(t, st["connection_error"])
	require.Zero(t, st["401"], "every retry was signed afresh")
	require.Equal(t, 2*len(events), int(s.attempts.Load()))
	require.Equal(t, len(events), int(s.retries.Load()))
}

// tooOld reports whether a svix-timestamp header is more than five
// minutes old, as webhookd's tolerance refuses it.
func tooOld(ts string) bool {
	var sec int64
	for _, c := range ts {
		if c < '0' || c > '9' {
			return true
		}
		sec = sec*10 + int64(c-'0')
	}
	return time.Since(time.Unix(sec, 0)) > 5*time.Minute
}
