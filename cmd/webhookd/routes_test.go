package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUnroutedRequestsGetJSONErrors checks that a path no route serves,
// and a method a routed path does not serve, are answered like every other
// error: JSON with an error id that is on a log line, 404 or 405 with
// Allow, on every route the server has (the checkpoint route included).
func TestUnroutedRequestsGetJSONErrors(t *testing.T) {
	t.Parallel()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	h := start(t, withConfig(func(c *AppConfig) {
		c.Seal = SealConfig{SigningKey: base64.StdEncoding.EncodeToString(key.Seed()), Interval: time.Hour, PollInterval: time.Hour}
	}))
	for _, tc := range []struct {
		method, path string
		status       int
		code, reason string
		allow        string
		message      string
	}{
		{"GET", "/nope", 404, "not_found", "route_not_found", "", "no such endpoint; webhooks go to POST /webhooks/clerk"},
		{"POST", "/", 404, "not_found", "route_not_found", "", ""},
		{"GET", "/webhooks/clerk/extra", 404, "not_found", "route_not_found", "", ""},
		{"PUT", "/webhooks/clerk", 405, "method_not_allowed", "method_not_allowed", "POST, GET, HEAD", "PUT is not served on this path; allowed: POST, GET, HEAD"},
		{"DELETE", "/api/webhooks/clerk", 405, "method_not_allowed", "method_not_allowed", "POST, GET, HEAD", ""},
		{"POST", "/metrics", 405, "method_not_allowed", "method_not_allowed", "GET, HEAD", ""},
		{"POST", "/readyz", 405, "method_not_allowed", "method_not_allowed", "GET, HEAD", ""},
		{"PATCH", "/healthz", 405, "method_not_allowed", "method_not_allowed", "GET, HEAD", ""},
		{"POST", "/ledger/checkpoint", 405, "method_not_allowed", "method_not_allowed", "GET, HEAD", ""},
		// A made-up method is not echoed back.
		{"BREW", "/webhooks/clerk", 405, "method_not_allowed", "method_not_allowed", "POST, GET, HEAD", "this method is not served on this path; allowed: POST, GET, HEAD"},
	} {
		req, err := http.NewRequest(tc.method, h.base+tc.path, strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		a := readAnswer(t, resp)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, "application/json", a.header.Get("Content-Type"), "%s %s", tc.method, tc.path)
		h.requireRejected(a, tc.status, tc.code, tc.reason)
		require.Equal(t, tc.allow, a.header.Get("Allow"), "%s %s", tc.method, tc.path)
		if tc.message != "" {
			require.Equal(t, tc.message, a.body["message"])
		}
	}
	// The routed methods still work, HEAD included.
	require.Equal(t, http.StatusOK, h.get("/ledger/checkpoint.json").status)
	resp, err := http.Head(h.base + "/healthz")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
