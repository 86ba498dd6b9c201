package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A console session nobody comes back to leaves admin_sessions once it is
// idle past WEBHOOKD_ADMIN_IDLE_TIMEOUT, without anyone signing in; a
// session in use stays and keeps working.
func TestIdleConsoleSessionIsRemovedWithoutASignIn(t *testing.T) {
	t.Parallel()
	// The sessions' clock, read by the sweeper's goroutine too.
	var clock atomic.Int64
	clock.Store(time.Now().UTC().UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	h := startAdmin(t, func(c *AppConfig) {
		c.AdminNow = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		c.AdminSweep = 20 * time.Millisecond
	})
	token := h.token("alice", "admin")
	sessions := func() int {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM admin_sessions`).Scan(&n))
		return n
	}
	idle, live := h.browser(), h.browser()
	idle.signIn(token)
	live.signIn(token)
	require.Equal(t, 2, sessions())

	// Ten minutes on, one is used; six more and the other has been idle
	// for sixteen (the limit is fifteen), the used one for six.
	advance(10 * time.Minute)
	require.Equal(t, 200, live.do("GET", "/", nil, nil).status)
	advance(6 * time.Minute)
	require.Eventually(t, func() bool { return sessions() == 1 }, 10*time.Second, 10*time.Millisecond,
		"the idle session's row is removed with no sign-in and no request")
	require.Never(t, func() bool { return sessions() != 1 }, 200*time.Millisecond, 20*time.Millisecond,
		"the session in use stays through later sweeps")
	require.Contains(t, h.logLine(`"msg":"admin_sessions_ended"`), "sessions")
	require.EqualValues(t, 1, h.logLine(`"msg":"admin_sessions_ended"`)["sessions"])

	// The idle browser's cookie names no session any more: sign in (not
	// "expired": the row is gone); the live one still works.
	p := idle.do("GET", "/", nil, nil)
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, "/signin", p.location)
	require.Equal(t, 200, live.do("GET", "/", nil, nil).status)
	require.Equal(t, 1, sessions())
}
