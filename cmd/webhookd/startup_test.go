package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/ingress"
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
			"CLERK_WEBHOOK_SIGNING_SECRET is not set: use the Signing Secret Clerk's dashboard shows for your endpoint; for local use any whsec_ secret works, e.g. export CLERK_WEBHOOK_SIGNING_SECRET=whsec_$(head -c 24 /dev/urandom | base64) (webhookd send signs with it too), or run `webhookd serve --dev` as a non-root user, which makes one"},
		{"blank secret", AppConfig{DatabaseURL: db.URL, SigningSecret: " \t"},
			"CLERK_WEBHOOK_SIGNING_SECRET is not set: use the Signing Secret"},
		{"secret not whsec_", AppConfig{DatabaseURL: db.URL, SigningSecret: "sk_test_abcdef"},
			`CLERK_WEBHOOK_SIGNING_SECRET: signing secret 1 of 1 does not start with "whsec_" (copy it from Clerk's dashboard, Webhooks → endpoint → Signing Secret)`},
		{"no database", AppConfig{SigningSecret: testSecret},
			"DATABASE_URL is not set: set it to your PostgreSQL (postgres://user:password@host:5432/db), or run `webhookd serve --dev`"},
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

// An unreachable database stops start-up with one line naming the host and
// port and why, never the password (pgx's own error lists every address
// tried, one per line).
func TestStartupRefusesUnreachableDatabase(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	proxy.Cut()
	closedPort := freeTCPPort(t)
	wrongDatabase := strings.Replace(db.URL, "/test?", "/no_such_database?", 1)
	require.NotEqual(t, db.URL, wrongDatabase, "the test server's database is named test")
	for _, tc := range []struct {
		url  string
		want string
	}{
		{fmt.Sprintf("postgres://postgres:hunter2@127.0.0.1:%d/x", closedPort),
			fmt.Sprintf(`^cannot reach the database at postgres://postgres@127\.0\.0\.1:%d/x: connection refused$`, closedPort)},
		{fmt.Sprintf("postgres://postgres:hunter2@localhost:%d/x", closedPort),
			fmt.Sprintf(`^cannot reach the database at postgres://postgres@localhost:%d/x: connection refused$`, closedPort)},
		{"postgres://postgres:hunter2@nosuchhost.invalid:5432/x",
			`^cannot reach the database at postgres://postgres@nosuchhost\.invalid:5432/x: cannot resolve host nosuchhost\.invalid$`},
		{fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=hunter2 dbname=x", closedPort),
			fmt.Sprintf(`^cannot reach the database at postgres://postgres@127\.0\.0\.1:%d/x: connection refused$`, closedPort)},
		{strings.Replace(viaProxy, "postgres://postgres@", "postgres://postgres:hunter2@", 1),
			`^cannot reach the database at postgres://postgres@127\.0\.0\.1:\d+/test: \S`},
		{wrongDatabase,
			`^cannot reach the database at postgres://postgres@[^/]+/no_such_database: the server refused: database "no_such_database" does not exist$`},
	} {
		_, err := NewApp(t.Context(), AppConfig{SigningSecret: testSecret, DatabaseURL: tc.url, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.Error(t, err, tc.url)
		require.Regexp(t, tc.want, err.Error())
		require.NotContains(t, err.Error(), "\n")
		require.NotContains(t, err.Error(), "hunter2")
	}
}

// The missing-secret line suggests a shell command for local use; it must
// give a secret webhookd accepts.
func TestMissingSecretSuggestionWorks(t *testing.T) {
	t.Parallel()
	_, suggestion, ok := strings.Cut(errNoSecret.Error(), "export ")
	require.True(t, ok)
	assignment, _, ok := strings.Cut(suggestion, " (")
	require.True(t, ok)
	out, err := exec.Command("sh", "-c", assignment+` && printf %s "$CLERK_WEBHOOK_SIGNING_SECRET"`).Output()
	require.NoError(t, err, assignment)
	secrets, err := ingress.ParseSecrets(string(out))
	require.NoError(t, err, "%q", out)
	require.Len(t, secrets, 1)
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
