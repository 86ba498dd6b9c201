package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// The bench client sends what net/http would, keeps its connection, and
// dials again after an answer that closes it (webhookd's 503 when
// overloaded does).
func TestWireConnKeepsAliveAndRedialsAfterClose(t *testing.T) {
	t.Parallel()
	var calls, conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		require.Equal(t, `{"n":1}`, string(body))
		require.Equal(t, "msg_1", r.Header.Get("svix-id"))
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, clerkfake.UserAgent, r.Header.Get("User-Agent"))
		if calls.Add(1) == 2 {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	h := http.Header{}
	h.Set("svix-id", "msg_1")
	reqs, err := wireRequests(srv.URL+"/webhooks/clerk", []Event{{Header: h, Body: []byte(`{"n":1}`)}})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(reqs[0]), "POST /webhooks/clerk HTTP/1.1\r\n"))

	c := &wireConn{addr: strings.TrimPrefix(srv.URL, "http://")}
	defer c.close()
	var got []int
	for range 4 {
		status, err := c.do(context.Background(), reqs[0])
		require.NoError(t, err)
		got = append(got, status)
	}
	require.Equal(t, []int{200, 503, 200, 200}, got)
	require.EqualValues(t, 2, conns.Load(), "one connection until the answer that closed it, then one more")
}
