package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/migrations"
)

func TestStartupRefusesBadSettings(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		cfg  AppConfig
		want string
	}{
		{"no secret", AppConfig{DatabaseURL: db.URL},
			"CLERK_WEBHOOK_SIGNING_SECRET: no signing secret set"},
		{"secret not whsec_", AppConfig{DatabaseURL: db.URL, SigningSecret: "sk_test_abcdef"},
			`CLERK_WEBHOOK_SIGNING_SECRET: signing secret 1 of 1 does not start with "whsec_" (copy it from Clerk's dashboard, Webhooks → endpoint → Signing Secret)`},
		{"no database", AppConfig{SigningSecret: testSecret},
			"DATABASE_URL is not set (or use --database-url): e.g. postgres://user:password@host:5432/db"},
		{"bad database url", AppConfig{SigningSecret: testSecret, DatabaseURL: "postgres://a b c"},
			"DATABASE_URL is not a valid PostgreSQL URL or DSN"},
		{"listen address taken", AppConfig{SigningSecret: testSecret, DatabaseURL: db.URL, Addr: "256.0.0.1:80"},
			"WEBHOOKD_ADDR: cannot listen on 256.0.0.1:80"},
	} {
		tc.cfg.Logger = quiet
		_, err := NewApp(context.Background(), tc.cfg)
		require.Error(t, err, tc.name)
		require.True(t, strings.HasPrefix(err.Error(), tc.want), "%s: got %q", tc.name, err)
		require.NotContains(t, err.Error(), "\n", tc.name)
	}
}

func TestStartupRefusesUnreachableDatabase(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	proxy.Cut()
	_, err := NewApp(context.Background(), AppConfig{
		SigningSecret: testSecret,
		DatabaseURL:   strings.Replace(viaProxy, "postgres://postgres@", "postgres://postgres:hunter2@", 1),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.Error(t, err)
	require.Regexp(t, `^cannot reach the database at postgres://postgres@127\.0\.0\.1:\d+/test: `, err.Error())
	require.NotContains(t, err.Error(), "hunter2")
}

func TestStartupChecksSchema(t *testing.T) {
	t.Parallel()
	db := testdb.NewEmpty(t)
	cfg := AppConfig{
		SigningSecret: testSecret,
		DatabaseURL:   db.URL,
		Addr:          "127.0.0.1:0",
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	_, err := NewApp(context.Background(), cfg)
	require.EqualError(t, err, "database schema is behind this webhookd: it is at version 0, this webhookd needs "+
		itoa(migrations.Latest)+"; run `webhookd migrate` or start with --migrate")

	cfg.Migrate = true
	app, err := NewApp(context.Background(), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	cancel()
	require.NoError(t, <-done)

	// A schema newer than this build is refused, even with --migrate.
	_, err = db.Pool.Exec(context.Background(), `INSERT INTO `+migrations.VersionTable+` (version_id, is_applied) VALUES ($1, true)`, migrations.Latest+1)
	require.NoError(t, err)
	_, err = NewApp(context.Background(), cfg)
	require.EqualError(t, err, "database schema is newer than this webhookd: it is at version "+itoa(migrations.Latest+1)+
		", this webhookd knows up to "+itoa(migrations.Latest)+"; upgrade webhookd")
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := NewApp(ctx, AppConfig{
		SigningSecret: testSecret, DatabaseURL: db.URL, Addr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	// A delivery whose body is still arriving when shutdown starts.
	body := fixture(t, "user.created.json")
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, "http://"+app.Addr()+"/webhooks/clerk", pr)
	require.NoError(t, err)
	req.Header = signed(t, testSecret, "msg_inflight", time.Now(), body)
	req.ContentLength = int64(len(body))
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		answered <- resp
	}()
	_, err = pw.Write(body[:10])
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // let the server start reading
	cancel()
	time.Sleep(100 * time.Millisecond) // shutdown has begun, the request is in flight
	_, err = pw.Write(body[10:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())

	resp := <-answered
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, <-done)

	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events WHERE svix_id = 'msg_inflight'`).Scan(&n))
	require.Equal(t, 1, n)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
