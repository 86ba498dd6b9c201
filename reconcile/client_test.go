package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 10 ":                          10 * time.Second,
		"-5":                            0,
		"soon":                          0,
		"Fri, 01 May 2026 12:00:07 GMT": 7 * time.Second,
		"Fri, 01 May 2026 11:00:00 GMT": 0,
	} {
		require.Equal(t, want, retryAfter(h, now), "%q", h)
	}
}

// Answers Clerk's API never gives are errors that name the request and
// what came back, never the body.
func TestUnexpectedAnswersAreNamedNotQuoted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"not":"an array"} jane.doe@example.org`, "GET /v1/users: the answer is not the JSON Clerk's API sends"},
		{404, `<html>jane.doe@example.org not found</html>`, "GET /v1/users: unexpected answer"},
		{403, `{"errors":[{"code":"authorization_invalid","message":"jane.doe@example.org may not"},{"code":"Jane Doe <x>"}]}`, "GET /v1/users answered 403 (authorization_invalid)"},
		{418, `teapot jane.doe@example.org`, "GET /v1/users answered 418"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
		}))
		cl, err := NewClient(ClientConfig{SecretKey: "sk_test_x", APIURL: srv.URL, Budget: -1})
		require.NoError(t, err)
		_, err = cl.ListUsers(context.Background(), 0, 10)
		srv.Close()
		require.EqualError(t, err, c.want)
	}
}

// CLERK_API_URL without a path gets /v1, as Clerk's SDKs do; with one it
// is kept.
func TestAPIURLPath(t *testing.T) {
	t.Parallel()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	for _, u := range []string{srv.URL, srv.URL + "/", srv.URL + "/proxy/clerk/v1"} {
		cl, err := NewClient(ClientConfig{SecretKey: "sk_test_x", APIURL: u, Budget: -1})
		require.NoError(t, err)
		_, err = cl.ListUsers(context.Background(), 0, 1)
		require.NoError(t, err)
	}
	require.Equal(t, []string{"/v1/users", "/v1/users", "/proxy/clerk/v1/users"}, paths)
}

// The default budget is half of a development instance's 100 requests
// per 10 s, spread evenly with a burst of a tenth; -1 is no limit.
func TestBudget(t *testing.T) {
	t.Parallel()
	for budget, want := range map[int][2]float64{0: {5, 5}, 1000: {100, 100}, 5: {0.5, 1}} {
		c, err := NewClient(ClientConfig{SecretKey: "sk_test_x", Budget: budget})
		require.NoError(t, err)
		l := c.backendTransport().limiter
		require.Equal(t, want, [2]float64{float64(l.Limit()), float64(l.Burst())}, "budget %d", budget)
	}
	c, err := NewClient(ClientConfig{SecretKey: "sk_test_x", Budget: -1})
	require.NoError(t, err)
	require.Nil(t, c.backendTransport().limiter)
}
