package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/testdb"
)

func TestDevSecretIsKeptAndReused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".webhookd")

	secret, created, err := loadOrCreateDevSecret(dir)
	require.NoError(t, err)
	require.True(t, created)
	_, err = ingress.ParseSecrets(secret)
	require.NoError(t, err, "a secret webhookd accepts")

	path := filepath.Join(dir, devSecretFile)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, secret+"\n", string(b))

	// A restart reuses it.
	again, created, err := loadOrCreateDevSecret(dir)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, secret, again)
}

func TestDevSecretFileMustHoldOneSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, devSecretFile)
	for _, content := range []string{"", "not-a-secret\n", testSecret + " " + otherSecret + "\n"} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, _, err := loadOrCreateDevSecret(dir)
		require.EqualError(t, err, path+" does not hold one whsec_ signing secret: delete it and start again to generate a new one")
	}
}

func TestDevBanner(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	printDevBanner(&out, ":8080", devSecretSource{value: testSecret, file: ".webhookd/signing-secret", created: true})
	require.Equal(t, `webhookd: development mode: DATABASE_URL is not set, so the data is in an embedded PostgreSQL under .webhookd/postgres (127.0.0.1:54329), kept across restarts; migrations are applied at start.
webhookd: generated a signing secret and kept it in .webhookd/signing-secret: `+testSecret+`
webhookd: WARNING: this secret is for development only. In production set CLERK_WEBHOOK_SIGNING_SECRET to the Signing Secret Clerk's dashboard shows for your endpoint.
webhookd: send a sample event with:

    bin/webhookd send user.created --to http://localhost:8080/webhooks/clerk

`, out.String())

	// Restarts name the file, never the secret again.
	out.Reset()
	printDevBanner(&out, "127.0.0.1:9000", devSecretSource{value: testSecret, file: ".webhookd/signing-secret"})
	require.Equal(t, `webhookd: development mode: DATABASE_URL is not set, so the data is in an embedded PostgreSQL under .webhookd/postgres (127.0.0.1:54329), kept across restarts; migrations are applied at start.
webhookd: using the development signing secret kept in .webhookd/signing-secret (development only).
webhookd: send a sample event with:

    bin/webhookd send user.created --to http://127.0.0.1:9000/webhooks/clerk

`, out.String())

	// A secret the developer set is theirs: not shown, not kept.
	out.Reset()
	printDevBanner(&out, "[::]:8081", devSecretSource{value: testSecret})
	require.NotContains(t, out.String(), testSecret)
	require.Contains(t, out.String(), "bin/webhookd send user.created --to http://localhost:8081/webhooks/clerk\n")
}

// With DATABASE_URL set nothing changes: no embedded PostgreSQL, no
// development secret, a missing secret stops start-up as before.
func TestProductionServeIgnoresDevMode(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	serve := &ServeCmd{DatabaseURL: db.URL, Addr: "127.0.0.1:0"}
	stop, err := serve.startDevMode(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	stop()
	require.Equal(t, &ServeCmd{DatabaseURL: db.URL, Addr: "127.0.0.1:0"}, serve)

	err = serve.Run(context.Background(), &Globals{LogFormat: "json", LogLevel: "error"})
	require.EqualError(t, err, "CLERK_WEBHOOK_SIGNING_SECRET: no signing secret set")
	_, err = os.Stat(devDir)
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written under .webhookd")
}

// PostgreSQL refuses root, and so does development mode, in one line
// naming the alternatives, before writing anything. (As a normal user this
// would start a real PostgreSQL on port 54329; CI proves that path with
// .ci/run.)
func TestDevModeRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs as root only")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".webhookd")
	_, _, err := startDevPostgres(context.Background(), dir)
	require.EqualError(t, err, "DATABASE_URL is not set, so webhookd would run on an embedded PostgreSQL (development mode), but PostgreSQL refuses to run as root: run as a non-root user, or set DATABASE_URL (TEST_DATABASE_URL for tests) to an existing PostgreSQL")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}
