package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

func withConfig(f func(*AppConfig)) option { return option(f) }

// clientFrom returns an HTTP client whose connections come from the
// loopback address ip (127.0.0.0/8 is all local on Linux), so a test can
// play several source addresses.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func (h *harness) postFrom(c *http.Client, header http.Header, body []byte) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
	require.NoError(h.t, err)
	req.Header = header
	resp, err := c.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	return readAnswer(h.t, resp)
}

func TestForgedFloodIsRateLimitedButValidDeliveriesPass(t *testing.T) {
	t.Parallel()
	// The clock is fixed, so no token is refilled during the test: the
	// counts below are exact.
	h := start(t)
	attacker, other := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 1})

	var valid []string
	deliverFrom := func(c *http.Client, i int) {
		id := fmt.Sprintf("msg_valid_%d", i)
		a := h.postFrom(c, signed(t, testSecret, id, h.now, body), body)
		require.Equal(t, http.StatusOK, a.status, "valid delivery %d: %v", i, a.body)
		require.Equal(t, "accepted", a.body["status"])
		valid = append(valid, id)
	}

	// The burst (20) of forged requests is answered 401, each a failure.
	for i := range 20 {
		a := h.postFrom(attacker, signed(t, otherSecret, fmt.Sprintf("msg_forged_%d", i), h.now, body), body)
		h.requireRejected(a, http.StatusUnauthorized, "unauthorized", "no_matching_signature")
		if i%5 == 0 {
			deliverFrom(attacker, i)
		}
	}
	// Beyond it: 429 with Retry-After (1 s at 1 failure/s), while valid
	// deliveries from the same and from another address still pass.
	for i := range 30 {
		a := h.postFrom(attacker, signed(t, otherSecret, fmt.Sprintf("msg_forged_more_%d", i), h.now, body), body)
		h.requireRejected(a, http.StatusTooManyRequests, "rate_limited", "too_many_failures")
		require.Equal(t, "1", a.header.Get("Retry-After"))
		require.Equal(t, "too many requests from this address failed verification; retry later", a.body["message"])
		deliverFrom(attacker, 100+i)
		deliverFrom(other, 200+i)
	}
	// Missing headers count as failures too, and a throttled source's
	// request that cannot verify is refused before its body is read: the
	// answer arrives while the body is still open.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, h.url, pr)
	require.NoError(t, err)
	req.ContentLength = 1000
	resp, err := attacker.Do(req)
	require.NoError(t, err)
	a := readAnswer(t, resp)
	require.NoError(t, resp.Body.Close())
	h.requireRejected(a, http.StatusTooManyRequests, "rate_limited", "too_many_failures")

	// Another address is not affected by the attacker's bucket.
	a = h.postFrom(other, signed(t, otherSecret, "msg_forged_other", h.now, body), body)
	h.requireRejected(a, http.StatusUnauthorized, "unauthorized", "no_matching_signature")

	// Nothing valid was lost.
	require.EqualValues(t, len(valid), h.ledgerCount())
	for _, id := range valid {
		e, err := h.store.Get(context.Background(), id)
		require.NoError(t, err)
		require.Equal(t, body, e.Payload)
	}
	line := h.logLine(`"rate_limited"`)
	require.Equal(t, "127.0.0.2", line["remote_addr"])
	require.EqualValues(t, 429, line["status"])
}

func TestInFlightBoundShedsLoad(t *testing.T) {
	t.Parallel()
	h := start(t, withConfig(func(c *AppConfig) { c.MaxInFlight = 2 }))
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 2})

	// Two verified deliveries whose appends wait (the ledger is locked by
	// another transaction) hold both slots.
	tx, err := h.db.Pool.Begin(context.Background())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(context.Background(), `LOCK TABLE ledger_events IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	answers := make(chan answer, 2)
	for i := range 2 {
		go func() { answers <- h.deliver(fmt.Sprintf("msg_held_%d", i), body) }()
	}
	require.Eventually(t, func() bool {
		return scrape(t, h).value("webhookd_webhook_requests_in_flight") == 2
	}, 10*time.Second, 5*time.Millisecond)

	a := h.deliver("msg_shed", body)
	h.requireRejected(a, http.StatusServiceUnavailable, "unavailable", "overloaded")
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.Equal(t, "webhookd is at its limit of requests in flight; retry later", a.body["message"])
	// A forged request is not shed: it never takes a slot, and is
	// answered for what it is.
	a = h.post(h.url, signed(t, otherSecret, "msg_forged_busy", h.now, body), body)
	h.requireRejected(a, http.StatusUnauthorized, "unauthorized", "no_matching_signature")

	require.NoError(t, tx.Rollback(context.Background()))
	for range 2 {
		require.Equal(t, http.StatusOK, (<-answers).status)
	}
	// Svix retries the shed delivery; with slots free it is stored.
	require.Equal(t, http.StatusOK, h.deliver("msg_shed", body).status)
	require.EqualValues(t, 3, h.ledgerCount())
	m := scrape(t, h)
	require.EqualValues(t, 1, m.value(`webhookd_webhook_requests_total{outcome="overloaded"}`))
	require.EqualValues(t, 3, m.value(`webhookd_webhook_requests_total{outcome="event_appended"}`))
}

// slowSender is a connection from one source address that sent a
// request's headers and the first byte of its body, and then nothing: a
// sender trickling its body at 1 byte/s, caught between two bytes.
type slowSender struct {
	conn   net.Conn
	br     *bufio.Reader
	answer chan *http.Response
}

// requireClosed checks that webhookd closed the connection after its
// answer, rather than keep reading the rest of the body at the sender's
// pace. The deadline only keeps a failure from hanging the test.
func (s *slowSender) requireClosed(t *testing.T) {
	t.Helper()
	require.NoError(t, s.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := s.br.ReadByte()
	require.ErrorIs(t, err, io.EOF)
}

func startSlowSender(t *testing.T, h *harness, ip string, header http.Header) *slowSender {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: webhookd\r\nContent-Length: 1000\r\n", ingress.WebhookPath)
	require.NoError(t, header.Write(&req))
	req.WriteString("\r\n{")
	_, err = conn.Write(req.Bytes())
	require.NoError(t, err)
	s := &slowSender{conn: conn, br: bufio.NewReader(conn), answer: make(chan *http.Response, 1)}
	go func() {
		resp, err := http.ReadResponse(s.br, nil)
		if err != nil {
			close(s.answer)
			return
		}
		s.answer <- resp
	}()
	return s
}

// TestSlowBodiesDoNotShutOutValidDeliveries: 70 connections from one
// address that send headers and then trickle their bodies hold at most
// that address's share of body reads (16); the rest are refused at once
// with a JSON 429, and signed deliveries from elsewhere pass. Once the
// slow bodies fail, they count as failed verifications.
func TestSlowBodiesDoNotShutOutValidDeliveries(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 4})
	var senders []*slowSender
	for i := range 70 {
		header := http.Header{"Content-Type": {"application/json"}}
		if i%2 == 0 {
			// Plausible Svix headers (a current timestamp, a v1
			// signature of the right length) that will not verify: they
			// pass the before-the-body check of a throttled source.
			header = signed(t, otherSecret, fmt.Sprintf("msg_slow_%d", i), h.now, body)
		}
		senders = append(senders, startSlowSender(t, h, "127.0.0.2", header))
	}
	// 54 are answered at once; 16 are being read.
	refused := 0
	var open []*slowSender
	require.Eventually(t, func() bool {
		open = open[:0]
		for _, s := range senders {
			select {
			case resp, ok := <-s.answer:
				require.True(t, ok, "a slow sender's connection closed without an answer")
				a := readAnswer(t, resp)
				require.NoError(t, resp.Body.Close())
				h.requireRejected(a, http.StatusTooManyRequests, "rate_limited", "too_many_body_reads")
				require.Equal(t, "too many requests from this address are still sending their body; retry later", a.body["message"])
				require.Equal(t, "5", a.header.Get("Retry-After"))
				s.requireClosed(t)
				s.answer = nil // answered; a nil channel is never ready
				refused++
			default:
				if s.answer != nil {
					open = append(open, s)
				}
			}
		}
		return refused == 70-ingress.DefaultMaxBodyReadsPerSource
	}, 10*time.Second, 5*time.Millisecond, "refused %d", refused)
	require.Len(t, open, ingress.DefaultMaxBodyReadsPerSource)
	m := scrape(t, h)
	require.EqualValues(t, ingress.DefaultMaxBodyReadsPerSource, m.value("webhookd_webhook_body_reads_in_flight"))
	require.EqualValues(t, 0, m.value("webhookd_webhook_requests_in_flight"))

	// Meanwhile signed deliveries from another address are stored, one
	// after another and many at once.
	valid := clientFrom("127.0.0.3")
	for i := range 10 {
		a := h.postFrom(valid, signed(t, testSecret, fmt.Sprintf("msg_during_%d", i), h.now, body), body)
		require.Equal(t, http.StatusOK, a.status, "answer: %v", a.body)
	}
	answers := make(chan int, 40)
	for i := range 40 {
		go func() {
			id := fmt.Sprintf("msg_during_burst_%d", i)
			req, _ := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
			req.Header = signed(t, testSecret, id, h.now, body)
			resp, err := valid.Do(req)
			if err != nil {
				answers <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- resp.StatusCode
		}()
	}
	for range 40 {
		require.Equal(t, http.StatusOK, <-answers)
	}
	require.EqualValues(t, 50, h.ledgerCount())

	// The slow senders give up: each body that never arrived is a failed
	// verification of their address.
	for _, s := range open {
		require.NoError(t, s.conn.Close())
	}
	require.Eventually(t, func() bool {
		return scrape(t, h).value(`webhookd_verification_failures_total{reason="body_unreadable"}`) == float64(len(open))
	}, 10*time.Second, 5*time.Millisecond)
	m = scrape(t, h)
	require.EqualValues(t, 0, m.value("webhookd_webhook_body_reads_in_flight"))
	require.EqualValues(t, 70-len(open), m.value(`webhookd_webhook_requests_total{outcome="read_limited"}`))
	require.EqualValues(t, 0, m.value(`webhookd_webhook_requests_total{outcome="overloaded"}`))
}

// TestBodyReadTimeoutCutsSlowSenders: a body still incomplete at
// WEBHOOKD_BODY_READ_TIMEOUT is answered 400 body_unreadable (JSON, with
// an error id) and counts as a failed verification, so a source that
// keeps doing it is refused before its body is read.
func TestBodyReadTimeoutCutsSlowSenders(t *testing.T) {
	t.Parallel()
	h := start(t, withConfig(func(c *AppConfig) {
		c.BodyReadTimeout = 200 * time.Millisecond
		c.FailedAuthBurst = 2
	}))
	trickle := func(header http.Header) answer {
		s := startSlowSender(t, h, "127.0.0.2", header)
		// One more byte every 50 ms: a body that keeps coming, too slowly.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					if _, err := s.conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		resp, ok := <-s.answer
		require.True(t, ok, "no answer")
		defer resp.Body.Close()
		return readAnswer(t, resp)
	}
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 5})
	for i := range 2 {
		a := trickle(signed(t, otherSecret, fmt.Sprintf("msg_trickle_%d", i), h.now, body))
		h.requireRejected(a, http.StatusBadRequest, "invalid", "body_unreadable")
		require.Equal(t, "could not read the request body within 200ms", a.body["message"])
	}
	// Its failures used up the source's burst: a request that cannot
	// verify is now refused before its body is read.
	s := startSlowSender(t, h, "127.0.0.2", http.Header{"Content-Type": {"application/json"}})
	resp, ok := <-s.answer
	require.True(t, ok, "no answer")
	a := readAnswer(t, resp)
	require.NoError(t, resp.Body.Close())
	h.requireRejected(a, http.StatusTooManyRequests, "rate_limited", "too_many_failures")
	s.requireClosed(t)
	m := scrape(t, h)
	require.EqualValues(t, 2, m.value(`webhookd_verification_failures_total{reason="body_unreadable"}`))
	require.EqualValues(t, 2, m.value(`webhookd_webhook_requests_total{outcome="event_invalid"}`))
	// Another address is not affected.
	require.Equal(t, http.StatusOK, h.postFrom(clientFrom("127.0.0.3"), signed(t, testSecret, "msg_ok", h.now, body), body).status)
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	h := start(t, withConfig(func(c *AppConfig) { c.TrustedProxies = "127.0.0.1/32, 10.0.0.0/8" }))
	var n atomic.Int32
	deliver := func(c *http.Client, xff ...string) (string, map[string]any) {
		id := fmt.Sprintf("msg_xff_%d", n.Add(1))
		body := clerkfake.MustBuild("session.created", clerkfake.Options{Seed: 3})
		header := signed(t, testSecret, id, h.now, body)
		for _, v := range xff {
			header.Add("X-Forwarded-For", v)
		}
		a := h.postFrom(c, header, body)
		require.Equal(t, http.StatusOK, a.status, "answer: %v", a.body)
		e, err := h.store.Get(context.Background(), id)
		require.NoError(t, err)
		return e.SourceIP, h.logLine(`"svix_id":"` + id + `"`)
	}

	// From a trusted proxy: the rightmost address that is not a trusted
	// proxy is the client; what the client wrote to its left is ignored.
	ip, line := deliver(http.DefaultClient, "192.0.2.66, 198.51.100.7, 10.1.2.3")
	require.Equal(t, "198.51.100.7", ip)
	require.Equal(t, "198.51.100.7", line["remote_addr"])
	require.Equal(t, "127.0.0.1", line["proxy_addr"])
	// Several headers are one list.
	ip, _ = deliver(http.DefaultClient, "192.0.2.66", "2001:db8::5")
	require.Equal(t, "2001:db8::5", ip)
	// A malformed entry stops the walk at the last trusted hop.
	ip, _ = deliver(http.DefaultClient, "198.51.100.7, not-an-ip")
	require.Equal(t, "127.0.0.1", ip)

	// From an untrusted peer the header is ignored.
	ip, line = deliver(clientFrom("127.0.0.2"), "198.51.100.7")
	require.Equal(t, "127.0.0.2", ip)
	require.Equal(t, "127.0.0.2", line["remote_addr"])
	require.NotContains(t, line, "proxy_addr")
}

func TestForwardedForIgnoredByDefault(t *testing.T) {
	t.Parallel()
	h := start(t)
	body := fixture(t, "user.created.json")
	header := signed(t, testSecret, "msg_xff_default", h.now, body)
	header.Set("X-Forwarded-For", "198.51.100.7")
	require.Equal(t, http.StatusOK, h.post(h.url, header, body).status)
	e, err := h.store.Get(context.Background(), "msg_xff_default")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", e.SourceIP)
	require.Equal(t, "127.0.0.1", h.logLine(`"event_appended"`)["remote_addr"])
}

func TestAbuseLimitSettingsAreChecked(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for _, tc := range []struct {
		set  func(*AppConfig)
		want string
	}{
		{func(c *AppConfig) { c.TrustedProxies = "10.0.0.0/8 proxy.internal" }, `WEBHOOKD_TRUSTED_PROXIES: "proxy.internal" is neither a CIDR prefix nor an IP address`},
		{func(c *AppConfig) { c.FailedAuthRate = -1 }, "WEBHOOKD_FAILED_AUTH_RATE: must be a positive number of requests per second, got -1"},
		{func(c *AppConfig) { c.FailedAuthBurst = -1 }, "WEBHOOKD_FAILED_AUTH_BURST: must be a positive number of requests, got -1"},
		{func(c *AppConfig) { c.MaxInFlight = -1 }, "WEBHOOKD_MAX_IN_FLIGHT: must be a positive number of requests, got -1"},
		{func(c *AppConfig) { c.MaxBodyReads = -1 }, "WEBHOOKD_MAX_BODY_READS_PER_SOURCE: must be a positive number of requests, got -1"},
		{func(c *AppConfig) { c.BodyReadTimeout = time.Minute }, "WEBHOOKD_BODY_READ_TIMEOUT: must be positive and at most the server's read timeout (30s), got 1m0s"},
		{func(c *AppConfig) { c.RejectLogEvery = -time.Second }, "WEBHOOKD_REJECT_LOG_INTERVAL: must be a positive duration, or 0 to log every rejected request, got -1s"},
	} {
		cfg := AppConfig{SigningSecret: testSecret, DatabaseURL: db.URL, Addr: "127.0.0.1:0"}
		tc.set(&cfg)
		_, err := NewApp(context.Background(), cfg)
		require.EqualError(t, err, tc.want)
	}
}

// TestSameSvixIDWithAnotherSignedBody: a second, differently signed body
// under a stored svix-id is answered 200 duplicate (Svix must stop
// retrying) and not appended, but the conflict is recorded: a metric, a
// WARN line with both digests (never the body) and the body itself in
// ledger_conflicts.
func TestSameSvixIDWithAnotherSignedBody(t *testing.T) {
	t.Parallel()
	h := start(t)
	first := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 8, FirstName: "Philippa"})
	second := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 9, FirstName: "Ottoline"})
	require.Equal(t, "accepted", h.deliver("msg_twice", first).body["status"])
	require.Equal(t, "duplicate", h.deliver("msg_twice", first).body["status"])
	require.Zero(t, scrape(t, h).value(`webhookd_ledger_conflicts_total`), "the same body again is no conflict")

	for range 2 { // the second: Svix retrying the conflicting delivery
		a := h.postFrom(clientFrom("127.0.0.4"), signed(t, testSecret, "msg_twice", h.now, second), second)
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, "duplicate", a.body["status"])
	}
	require.EqualValues(t, 1, h.ledgerCount())
	e, err := h.store.Get(context.Background(), "msg_twice")
	require.NoError(t, err)
	require.Equal(t, first, e.Payload)

	var payload []byte
	var ip string
	require.NoError(t, h.db.Pool.QueryRow(context.Background(),
		`SELECT payload, host(source_ip) FROM ledger_conflicts WHERE svix_id = 'msg_twice'`).Scan(&payload, &ip))
	require.Equal(t, second, payload)
	require.Equal(t, "127.0.0.4", ip)

	m := scrape(t, h)
	require.EqualValues(t, 2, m.value(`webhookd_ledger_conflicts_total`))
	require.EqualValues(t, 3, m.value(`webhookd_ledger_duplicates_total`))
	line := h.logLine(`"ledger_conflict"`)
	require.Equal(t, "WARN", line["level"])
	require.Equal(t, "msg_twice", line["svix_id"])
	require.Equal(t, sha256Hex(first), line["stored_sha256"])
	require.Equal(t, sha256Hex(second), line["received_sha256"])
	require.Equal(t, "127.0.0.4", line["remote_addr"])
	require.Equal(t, true, line["recorded"])
	logs := h.logs.String()
	require.NotContains(t, logs, "Ottoline")
	require.NotContains(t, logs, "Philippa")
}

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
