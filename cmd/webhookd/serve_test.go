package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/testdb"
)

func TestValidEventIsAppendedByteForByte(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")

	a := h.deliver("msg_new_1", body)
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, map[string]any{"status": "accepted", "svix_id": "msg_new_1", "event_type": "user.created"}, a.body)

	e, err := h.store.Get(context.Background(), "msg_new_1")
	require.NoError(t, err)
	require.Equal(t, body, e.Payload)
	require.Equal(t, "user.created", e.EventType)
	require.Equal(t, "user_29w83sxmDNGwOuEthce5gg56FcC", e.SubjectID)
	require.Equal(t, "ins_123", e.InstanceID)
	require.Equal(t, domain.SourceClerk, e.Source)
	require.Equal(t, time.UnixMilli(1654012591835).UTC(), e.EventTime)
	require.Equal(t, domain.UnitMilliseconds, e.TimestampUnit)
	require.Equal(t, h.now, e.SvixTimestamp)
	require.Equal(t, h.now, e.ReceivedAt)
	require.Equal(t, "127.0.0.1", e.SourceIP)
	require.True(t, strings.HasPrefix(e.Signature, "v1,"))

	line := h.logLine(`"event_appended"`)
	require.Equal(t, "msg_new_1", line["svix_id"])
	require.Equal(t, "user_29w83sxmDNGwOuEthce5gg56FcC", line["clerk_id"])
	require.Equal(t, "stored", line["outcome"])
}

func TestLegacyPathAndWebhookHeaders(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "session.created.json")
	svixHeaders := signed(t, testSecret, "msg_std_1", h.now, body)
	std := http.Header{}
	std.Set("webhook-id", svixHeaders.Get("svix-id"))
	std.Set("webhook-timestamp", svixHeaders.Get("svix-timestamp"))
	std.Set("webhook-signature", svixHeaders.Get("svix-signature"))

	a := h.post(h.base+ingress.LegacyWebhookPath, std, body)
	require.Equal(t, http.StatusOK, a.status, "body: %v", a.body)
	require.Equal(t, "accepted", a.body["status"])
	e, err := h.store.Get(context.Background(), "msg_std_1")
	require.NoError(t, err)
	require.Equal(t, "session.created", e.EventType)
	require.Equal(t, domain.UnitSeconds, e.TimestampUnit, "the spec example carries seconds")
	require.Equal(t, time.Unix(1716883200, 0).UTC(), e.EventTime)
}

func TestEveryClerkFixtureIsAccepted(t *testing.T) {
	t.Parallel()
	h := start(t)
	for i, name := range []string{"user.created.json", "user.deleted.json", "session.created.json", "organization.created.json", "organizationMembership.created.json"} {
		a := h.deliver(fmt.Sprintf("msg_fixture_%d", i), fixture(t, name))
		require.Equal(t, http.StatusOK, a.status, "%s: %v", name, a.body)
		require.Equal(t, strings.TrimSuffix(name, ".json"), a.body["event_type"])
	}
	require.EqualValues(t, 5, h.ledgerCount())
}

func TestRedeliveryIsDuplicate(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	require.Equal(t, "accepted", h.deliver("msg_again", body).body["status"])

	a := h.deliver("msg_again", body)
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, "duplicate", a.body["status"])
	require.EqualValues(t, 1, h.ledgerCount())
	require.Equal(t, "msg_again", h.logLine(`"event_duplicate"`)["svix_id"])
}

func TestFiftyConcurrentCopiesMakeOneRow(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	header := signed(t, testSecret, "msg_race", h.now, body)

	const copies = 50
	statuses := make([]string, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			a := h.post(h.url, header.Clone(), body)
			require.Equal(t, http.StatusOK, a.status)
			statuses[i] = a.body["status"].(string)
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for _, s := range statuses {
		counts[s]++
	}
	require.Equal(t, map[string]int{"accepted": 1, "duplicate": copies - 1}, counts)
	require.EqualValues(t, 1, h.ledgerCount())
}

func TestBadSignatureIsRejected(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	header := signed(t, otherSecret, "msg_forged", h.now, body)

	a := h.post(h.url, header, body)
	h.requireRejected(a, http.StatusUnauthorized, "unauthorized", "no_matching_signature")
	require.Equal(t, "signature does not match any active signing secret", a.body["message"])

	// A body changed after signing fails too.
	header = signed(t, testSecret, "msg_altered", h.now, body)
	altered := []byte(strings.Replace(string(body), "Example", "Exampl3", 1))
	h.requireRejected(h.post(h.url, header, altered), http.StatusUnauthorized, "unauthorized", "no_matching_signature")
	require.EqualValues(t, 0, h.ledgerCount())
}

func TestRotatedSecretsAreBothAccepted(t *testing.T) {
	t.Parallel()
	h := start(t, withSecret(testSecret+", "+otherSecret))
	body := fixture(t, "user.created.json")

	for i, secret := range []string{testSecret, otherSecret} {
		id := fmt.Sprintf("msg_rot_%d", i)
		a := h.post(h.url, signed(t, secret, id, h.now, body), body)
		require.Equal(t, http.StatusOK, a.status, "secret %d", i)
		require.Equal(t, "accepted", a.body["status"])
	}
	third := "whsec_plJ3nmyCDGBKInavdOK15jsl"
	h.requireRejected(h.post(h.url, signed(t, third, "msg_rot_x", h.now, body), body), http.StatusUnauthorized, "unauthorized", "no_matching_signature")
	require.EqualValues(t, 2, h.ledgerCount())
}

func TestTimestampOutsideToleranceIsRejected(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	for _, tc := range []struct {
		at     time.Time
		reason string
	}{
		{h.now.Add(-ingress.Tolerance - time.Second), "timestamp_too_old"},
		{h.now.Add(ingress.Tolerance + time.Second), "timestamp_too_new"},
	} {
		a := h.post(h.url, signed(t, testSecret, "msg_"+tc.reason, tc.at, body), body)
		h.requireRejected(a, http.StatusUnauthorized, "unauthorized", tc.reason)
	}
	// At the edge of the tolerance it is still accepted.
	a := h.post(h.url, signed(t, testSecret, "msg_edge", h.now.Add(-ingress.Tolerance), body), body)
	require.Equal(t, http.StatusOK, a.status)
	require.EqualValues(t, 1, h.ledgerCount())
}

func TestMissingHeadersAreRejected(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	full := signed(t, testSecret, "msg_hdr", h.now, body)
	for _, drop := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		header := full.Clone()
		header.Del(drop)
		a := h.post(h.url, header, body)
		h.requireRejected(a, http.StatusBadRequest, "invalid", "missing_headers")
	}
	header := full.Clone()
	header.Set("svix-timestamp", "yesterday")
	h.requireRejected(h.post(h.url, header, body), http.StatusBadRequest, "invalid", "invalid_headers")
	require.EqualValues(t, 0, h.ledgerCount())
}

func TestBodiesThatAreNotClerkEventsAreRejected(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, tc := range []struct {
		body, reason, message string
	}{
		{`{"type":"user.created",`, "body_not_json", "body is not valid JSON (syntax error at byte 23)"},
		{`not json at all`, "body_not_json", "body is not valid JSON (syntax error at byte 2)"},
		{`[1,2,3]`, "not_clerk_event", "body is JSON but not an object: a Clerk event is a JSON object"},
		{`{"hello":"world"}`, "not_clerk_event", `not a Clerk event: "object" must be "event"`},
		{`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{}}`, "not_clerk_event", `not a Clerk event: "data.id" must be a non-empty string`},
		{`{"object":"event","type":"user created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "type" must look like "user.created"`},
		{`{"object":"event","type":"user.created","timestamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "instance_id" is required`},
		{`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":"soon","data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" must be a number (unix milliseconds)`},
		// Beyond what the ledger's timestamptz holds: it can never be
		// stored, so it is a 4xx on every retry, never a 500.
		{`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":99999999999999999,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":999999999999999999,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":9223372036854775808,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		// Member names are exact: "TYPE" is not "type".
		{`{"object":"event","TYPE":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "type" is required`},
	} {
		for range 2 { // a retry gets the same answer
			a := h.post(h.url, signed(t, testSecret, "msg_bad", h.now, []byte(tc.body)), []byte(tc.body))
			h.requireRejected(a, http.StatusBadRequest, "invalid", tc.reason)
			require.Equal(t, tc.message, a.body["message"], tc.body)
			// Signed by Clerk and refused for what it is: Svix need not
			// retry it for 27 hours.
			require.Equal(t, ingress.AbortValue, a.header.Get(ingress.AbortHeader), tc.body)
		}
	}
	require.EqualValues(t, 0, h.ledgerCount())

	// Not signed (a forger, or a secret being rotated) or not readable as a
	// delivery: no word to Svix about retries.
	bad := []byte(`{"hello":"world"}`)
	a := h.post(h.url, signed(t, otherSecret, "msg_forged", h.now, bad), bad)
	h.requireRejected(a, http.StatusUnauthorized, "unauthorized", "no_matching_signature")
	require.Empty(t, a.header.Get(ingress.AbortHeader))
	a = h.post(h.url, http.Header{"Content-Type": {"application/json"}}, bad)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Empty(t, a.header.Get(ingress.AbortHeader))
}

func TestBodyOverLimitIsRejected(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := []byte(`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1","pad":"` + strings.Repeat("x", ingress.DefaultMaxBodyBytes) + `"}}`)
	a := h.post(h.url, signed(t, testSecret, "msg_big", h.now, body), body)
	h.requireRejected(a, http.StatusRequestEntityTooLarge, "too_large", "body_too_large")
	require.EqualValues(t, 0, h.ledgerCount())
}

func TestDatabaseDownThenUp(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	h := startOn(t, db, withDatabaseURL(viaProxy))
	body := fixture(t, "user.created.json")
	header := signed(t, testSecret, "msg_outage", h.now, body)

	proxy.Cut()
	a := h.post(h.url, header.Clone(), body)
	h.requireRejected(a, http.StatusServiceUnavailable, "unavailable", "database_unavailable")
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.Equal(t, "the ledger database is unavailable; retry later", a.body["message"])
	ready := h.get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, ready.status)
	require.Equal(t, "not_ready", ready.body["status"])

	proxy.Restore()
	// Svix retries the same delivery; it now succeeds, once.
	a = h.post(h.url, header.Clone(), body)
	require.Equal(t, http.StatusOK, a.status, "answer: %v", a.body)
	require.Equal(t, "accepted", a.body["status"])
	require.EqualValues(t, 1, h.ledgerCount())
	require.Equal(t, http.StatusOK, h.get("/readyz").status)
}

func TestStatusAndHealthEndpoints(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, p := range []string{ingress.WebhookPath, ingress.LegacyWebhookPath} {
		a := h.get(p)
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, "ok", a.body["status"])
		require.Equal(t, "webhookd", a.body["service"])
		require.NotEmpty(t, a.body["version"])
	}
	require.Equal(t, map[string]any{"status": "ok"}, h.get("/healthz").body)
	require.Equal(t, map[string]any{"status": "ready", "checks": map[string]any{
		"database": "ok", "migrations": "ok",
		"projections": []any{map[string]any{"projection": "users", "events": 0.0, "seconds": 0.0},
			map[string]any{"projection": "practices", "events": 0.0, "seconds": 0.0},
			map[string]any{"projection": "memberships", "events": 0.0, "seconds": 0.0}},
		"ledger_append_lock": "ok",
		"sealer":             "disabled",
		"forwarder":          "disabled",
	}}, h.get("/readyz").body)
}
