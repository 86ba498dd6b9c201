package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/internal/testlog"

	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/fixtures"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer = testlog.Buffer

type harness struct {
	t     *testing.T
	db    *testdb.DB
	url   string // webhook endpoint
	base  string
	store *eventstore.Store
	logs  *syncBuffer
	now   time.Time
	stop  func()
	// app is the running webhookd.
	app *App
	// roots holds the root hashes of the checkpoints waitCheckpoint saw,
	// by tree size.
	roots map[int]string
}

type option func(*AppConfig)

func withSecret(s string) option      { return func(c *AppConfig) { c.SigningSecret = s } }
func withDatabaseURL(u string) option { return func(c *AppConfig) { c.DatabaseURL = u } }

// start runs the real webhookd in-process on a free port against a fresh
// schema, with a fixed clock.
func start(t *testing.T, opts ...option) *harness {
	t.Helper()
	db := testdb.New(t)
	return startOn(t, db, opts...)
}

func startOn(t *testing.T, db *testdb.DB, opts ...option) *harness {
	t.Helper()
	logs := &syncBuffer{}
	h := &harness{t: t, db: db, logs: logs, now: time.Now().UTC().Truncate(time.Second)}
	cfg := AppConfig{
		DatabaseURL:   db.URL,
		SigningSecret: testSecret,
		Addr:          "127.0.0.1:0",
		Logger:        slog.New(slog.NewJSONHandler(logs, nil)),
		Now:           func() time.Time { return h.now },
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := NewApp(ctx, cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	h.app = app
	h.base = "http://" + app.Addr()
	h.url = h.base + ingress.WebhookPath
	h.stop = func() {
		cancel()
		err := <-done
		done <- nil // for the cleanup below
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	h.store, err = eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	return h
}

// signed returns Svix headers for body, signed with secret at time at.
func signed(t *testing.T, secret, msgID string, at time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := wh.Sign(msgID, at, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("svix-id", msgID)
	h.Set("svix-timestamp", fmt.Sprint(at.Unix()))
	h.Set("svix-signature", sig)
	h.Set("Content-Type", "application/json")
	return h
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (h *harness) post(url string, header http.Header, body []byte) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(h.t, err)
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	return readAnswer(h.t, resp)
}

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &a.body), "body: %s", raw)
	}
	return a
}

func (h *harness) deliver(msgID string, body []byte) answer {
	h.t.Helper()
	return h.post(h.url, signed(h.t, testSecret, msgID, h.now, body), body)
}

// waitProjected waits until every read model has applied every entry
// the ledger holds now.
func (h *harness) waitProjected() {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		for _, name := range projections.Names() {
			lag, err := projections.MeasureLag(context.Background(), h.db.Pool, name, time.Now())
			if err != nil || lag.Events > 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond)
}

func (h *harness) get(path string) answer {
	h.t.Helper()
	resp, err := http.Get(h.base + path)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	return readAnswer(h.t, resp)
}

func (h *harness) ledgerCount() int64 {
	h.t.Helper()
	n, err := h.store.Count(context.Background())
	require.NoError(h.t, err)
	return n
}

// fixture returns Clerk's example body for name, "TYPE.json".
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return fixtures.ClerkEvent(strings.TrimSuffix(name, ".json"))
}

// requireRejected checks an error answer and that its error_id is on a log
// line with the same reason.
func (h *harness) requireRejected(a answer, status int, code, reason string) {
	h.t.Helper()
	require.Equal(h.t, status, a.status, "answer: %v", a.body)
	require.Equal(h.t, code, a.body["error"])
	require.Equal(h.t, reason, a.body["reason"])
	id, _ := a.body["error_id"].(string)
	require.Regexp(h.t, `^ERR_\d{13}_[0-9a-z]{9}$`, id)
	line := h.logLine(id)
	require.Equal(h.t, reason, line["reason"])
	require.EqualValues(h.t, status, line["status"])
}

// logLine returns the JSON log line holding s.
func (h *harness) logLine(s string) map[string]any {
	h.t.Helper()
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, s) {
			var m map[string]any
			require.NoError(h.t, json.Unmarshal([]byte(l), &m))
			return m
		}
	}
	h.t.Fatalf("no log line holds %q; logs:\n%s", s, h.logs.String())
	return nil
}
