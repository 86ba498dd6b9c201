package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
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

// Development mode keeps a checkpoint signing key beside the secret: 0600,
// the form WEBHOOKD_SIGNING_KEY takes, the same one at every start, and
// what export signs with and verify trusts (readDevKey).
func TestDevKeyIsKeptAndReused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".webhookd")
	_, path, found, err := readDevKey(dir)
	require.NoError(t, err)
	require.False(t, found, "none before serve --dev made one")

	text, created, err := loadOrCreateDevKey(dir)
	require.NoError(t, err)
	require.True(t, created)
	key, err := seal.ParseSigningKey(text)
	require.NoError(t, err)

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again, created, err := loadOrCreateDevKey(dir)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, text, again)

	read, readPath, found, err := readDevKey(dir)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, path, readPath)
	require.Equal(t, key, read)
}

func TestDevKeyFileMustHoldOneKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, devKeyFile)
	other := filepath.Join(dir, "elsewhere")
	require.NoError(t, os.WriteFile(other, []byte(sealKeyText), 0o600))
	seed64 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg=="
	// Empty, not base64, two keys, a file name (which WEBHOOKD_SIGNING_KEY
	// would follow), a 64-byte key: all refused, none followed.
	for _, content := range []string{"", "not a key\n", sealKeyText + " " + sealKeyText + "\n", other + "\n", seed64 + "\n"} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, _, err := loadOrCreateDevKey(dir)
		require.EqualError(t, err, path+" does not hold one base64 Ed25519 key: delete it and start again to generate a new one", "content %q", content)
		_, _, _, err = readDevKey(dir)
		require.EqualError(t, err, path+" does not hold one base64 Ed25519 key: delete it and run webhookd serve --dev to generate a new one", "content %q", content)
	}
}

const devURL = "postgres://postgres:postgres@127.0.0.1:54329/webhookd?sslmode=disable"

func TestDevBanner(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	devBanner{
		addr: ":8080", sendAddr: ":8080", databaseURL: devURL, seal: time.Second,
		secret: devFile{value: testSecret, file: ".webhookd/signing-secret", created: true},
		key:    devFile{value: sealKeyText, file: ".webhookd/signing-key", created: true},
	}.print(&out)
	require.Equal(t, `webhookd: development mode (--dev): the data is in an embedded PostgreSQL under .webhookd/postgres, kept across restarts; migrations are applied at start.
webhookd: DATABASE_URL=`+devURL+` (for psql; webhookd commands run in this folder find it by themselves)
webhookd: generated a signing secret and kept it in .webhookd/signing-secret: `+testSecret+`
webhookd: WARNING: this secret is for development only. In production set CLERK_WEBHOOK_SIGNING_SECRET to the Signing Secret Clerk's dashboard shows for your endpoint.
webhookd: generated a checkpoint signing key and kept it in .webhookd/signing-key (development only); checkpoints are signed every 1s, and export and verify run here use it.
webhookd: send a sample event with:

    bin/webhookd send user.created

`, out.String())
	require.NotContains(t, out.String(), sealKeyText, "a signing key is never printed")

	// Restarts name the files, never the secret again. An address send
	// would not find by itself (--addr given to serve, not WEBHOOKD_ADDR)
	// is spelt out.
	out.Reset()
	devBanner{
		addr: "127.0.0.1:9000", sendAddr: ":8080", databaseURL: devURL, seal: 3 * time.Second,
		secret: devFile{value: testSecret, file: ".webhookd/signing-secret"},
		key:    devFile{value: sealKeyText, file: ".webhookd/signing-key"},
	}.print(&out)
	require.Equal(t, `webhookd: development mode (--dev): the data is in an embedded PostgreSQL under .webhookd/postgres, kept across restarts; migrations are applied at start.
webhookd: DATABASE_URL=`+devURL+` (for psql; webhookd commands run in this folder find it by themselves)
webhookd: using the development signing secret kept in .webhookd/signing-secret (development only).
webhookd: using the development checkpoint signing key kept in .webhookd/signing-key (development only); checkpoints are signed every 3s.
webhookd: send a sample event with:

    bin/webhookd send user.created --to http://127.0.0.1:9000/webhooks/clerk

`, out.String())

	// A secret and key the developer set are theirs: not shown, not kept.
	// WEBHOOKD_ADDR=[::]:8081 is where send looks by itself.
	out.Reset()
	devBanner{addr: "[::]:8081", sendAddr: "[::]:8081", databaseURL: devURL, secret: devFile{value: testSecret}, key: devFile{value: sealKeyText}}.print(&out)
	require.NotContains(t, out.String(), testSecret)
	require.NotContains(t, out.String(), "signing-key")
	require.True(t, strings.HasSuffix(out.String(), "    bin/webhookd send user.created\n\n"), out.String())
}

// With DATABASE_URL set nothing of development mode happens: no embedded
// PostgreSQL, no development secret or key, a missing secret stops
// start-up, even where .webhookd/ exists.
func TestProductionServeIgnoresDevMode(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, devPostgresDir), 0o700))
	serve := &ServeCmd{Database: Database{URL: db.URL, dir: dir}, Addr: "127.0.0.1:0"}
	g, out := testGlobals()
	err := serve.Run(t.Context(), g)
	require.ErrorIs(t, err, errNoSecret)
	require.Empty(t, out.String(), "no banner")
	for _, name := range []string{devSecretFile, devKeyFile, devPostgresLog} {
		require.NoFileExists(t, filepath.Join(dir, name))
	}
}

// PostgreSQL refuses root, and so does development mode, in one line
// naming the alternative, before writing anything. (As a normal user
// TestDevModeQuickStart runs the real thing.)
func TestDevModeRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs as root only")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".webhookd")
	for _, own := range []bool{true, false} {
		_, err := startDevPostgres(t.Context(), dir, freeTCPPort(t), own)
		require.EqualError(t, err, "development mode runs an embedded PostgreSQL, but PostgreSQL refuses to run as root: run as a non-root user, or set DATABASE_URL to an existing PostgreSQL instead of using --dev")
		require.NoDirExists(t, dir)
	}
}

// devPublicKey is the public half of the key in dir/signing-key.
func devPublicKey(t *testing.T, dir string) ed25519.PublicKey {
	t.Helper()
	key, _, found, err := readDevKey(dir)
	require.NoError(t, err)
	require.True(t, found)
	return key.Public().(ed25519.PublicKey)
}
