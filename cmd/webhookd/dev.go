package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/devdb"
)

// Development mode (`webhookd serve --dev`, WEBHOOKD_DEV=true): webhookd
// runs on its own embedded PostgreSQL, so that `make run` works on a fresh
// clone with nothing but Go and PostgreSQL's binaries. Everything it keeps
// lives under devDir, which is also how the other commands run in the same
// directory find it (database.go).
const (
	// devDir holds the development database, signing secret and
	// checkpoint key, relative to the working directory (the checkout,
	// under `make run`).
	devDir = ".webhookd"
	// devPostgresDir, in devDir, is the embedded PostgreSQL's directory.
	devPostgresDir = "postgres"
	// devSecretFile, in devDir, keeps the generated webhook signing secret
	// so that restarts (and `webhookd send`) reuse it.
	devSecretFile = "signing-secret"
	// devKeyFile, in devDir, keeps the generated checkpoint signing key
	// (WEBHOOKD_SIGNING_KEY's base64 form), so that export signs with it
	// and verify trusts it.
	devKeyFile = "signing-key"
	// devPostgresLog, in devDir, receives the embedded PostgreSQL's output.
	devPostgresLog = "postgres.log"
	// devSealInterval is how often development mode signs a checkpoint
	// (unless WEBHOOKD_SEAL_INTERVAL says otherwise), so that an event
	// sent a moment ago is in the next export.
	devSealInterval = time.Second
	// devJoinTimeout bounds waiting for a development PostgreSQL another
	// process is starting.
	devJoinTimeout = time.Minute
)

// devPostgres is the development PostgreSQL a command uses.
type devPostgres struct {
	url string
	// joined: another process runs it; stop leaves it running.
	joined bool
	server *devdb.Server
	log    *os.File
}

// stop shuts the embedded PostgreSQL down if this process started it.
func (p *devPostgres) stop(logger *slog.Logger) {
	err := errors.Join(p.server.Stop(), p.log.Close())
	switch {
	case err != nil:
		logger.Error("embedded_postgres_stop_failed", slog.String("error", err.Error()))
	case !p.joined:
		logger.Info("embedded_postgres_stopped")
	}
}

// startDevPostgres starts the development PostgreSQL under dir/postgres on
// port or, unless own is set, joins the one another process runs there.
// Its errors are one line a webhookd user can act on.
func startDevPostgres(ctx context.Context, dir string, port uint16, own bool) (*devPostgres, error) {
	// Checked before anything is written, so that root leaves no files
	// behind that a later non-root start could not use.
	if os.Geteuid() == 0 {
		return nil, errDevRoot
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("development mode: %w", err)
	}
	// PostgreSQL's own output: the first place to look when it fails. The
	// library writes to it at start and stop.
	logPath := filepath.Join(dir, devPostgresLog)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("development mode: %w", err)
	}
	opts := devdb.Options{Dir: filepath.Join(dir, devPostgresDir), Port: uint32(port), Logger: logFile}
	var pg *devdb.Server
	if own {
		pg, err = devdb.Start(ctx, opts)
	} else {
		joinCtx, cancel := context.WithTimeout(ctx, devJoinTimeout)
		pg, err = devdb.Open(joinCtx, opts)
		cancel()
	}
	if err != nil {
		_ = logFile.Close()
		return nil, devStartError(err, port, logPath)
	}
	return &devPostgres{url: pg.URL(), joined: pg.Joined(), server: pg, log: logFile}, nil
}

// errDevRoot: PostgreSQL refuses root, and so does development mode.
var errDevRoot = fmt.Errorf("development mode runs an embedded PostgreSQL, but %w: run as a non-root user, or set DATABASE_URL to an existing PostgreSQL instead of using --dev", devdb.ErrRoot)

// devStartError says what to do about a development PostgreSQL that did not
// start, naming webhookd's settings rather than devdb's.
func devStartError(err error, port uint16, logPath string) error {
	var inUse *devdb.DirInUseError
	switch {
	case errors.Is(err, devdb.ErrRoot):
		return errDevRoot
	case errors.As(err, &inUse):
		holder := "another webhookd"
		if inUse.PID > 0 {
			holder = fmt.Sprintf("another webhookd (pid %d)", inUse.PID)
		}
		return fmt.Errorf("development mode: %s already runs the development database of this folder (%s): stop it (Ctrl-C where it runs) and start again, or run this one from another folder",
			holder, filepath.Join(devDir, devPostgresDir))
	case errors.Is(err, devdb.ErrPortInUse):
		return fmt.Errorf("development mode: port 127.0.0.1:%d, the development PostgreSQL's, is taken (another webhookd serve --dev in another folder?): stop what holds it, or choose another port with WEBHOOKD_DEV_PORT (--dev-port)", port)
	default:
		return fmt.Errorf("development mode: the embedded PostgreSQL did not start (its log is %s): %w", logPath, err)
	}
}

// devFile is a generated development credential kept in devDir.
type devFile struct {
	value   string
	file    string // empty when the value was set by the user
	created bool   // generated by this start
}

// loadOrCreateDevSecret returns the development signing secret kept in
// dir/signing-secret, generating it (file mode 0600) on first use.
func loadOrCreateDevSecret(dir string) (secret string, created bool, err error) {
	return loadOrCreateDevFile(dir, devSecretFile, "signing secret", clerkfake.NewSecret, func(s string) error {
		if _, err := ingress.ParseSecrets(s); err != nil || strings.ContainsAny(s, ", \t\n") {
			return errors.New("does not hold one whsec_ signing secret")
		}
		return nil
	})
}

// loadOrCreateDevKey returns the development checkpoint signing key kept
// in dir/signing-key (base64 of the Ed25519 seed, as `webhookd keygen`
// prints it), generating it (file mode 0600) on first use.
func loadOrCreateDevKey(dir string) (key string, created bool, err error) {
	return loadOrCreateDevFile(dir, devKeyFile, "checkpoint signing key", func() string {
		k, _ := seal.GenerateKey() // crypto/rand never fails (Go 1.24+)
		return seal.EncodePrivateKey(k)
	}, checkDevKey)
}

// checkDevKey accepts the base64 of a 32-byte Ed25519 seed, the only form
// devKeyFile holds (ParseSigningKey would also take a file name).
func checkDevKey(s string) error {
	if seed, err := base64.StdEncoding.DecodeString(s); err != nil || len(seed) != ed25519.SeedSize {
		return errors.New("does not hold one base64 Ed25519 key")
	}
	return nil
}

// readDevKey reads the development checkpoint key, if `webhookd serve
// --dev` made one in dir.
func readDevKey(dir string) (ed25519.PrivateKey, string, bool, error) {
	path := filepath.Join(dir, devKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, false, nil
	}
	if err != nil {
		return nil, path, false, fmt.Errorf("read the development checkpoint key: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if checkDevKey(text) != nil {
		return nil, path, false, fmt.Errorf("%s does not hold one base64 Ed25519 key: delete it and run webhookd serve --dev to generate a new one", path)
	}
	key, err := seal.ParseSigningKey(text)
	if err != nil {
		return nil, path, false, fmt.Errorf("%s does not hold one base64 Ed25519 key: delete it and run webhookd serve --dev to generate a new one", path)
	}
	return key, path, true, nil
}

// loadOrCreateDevFile returns the value kept in dir/name, generating it
// (file mode 0600, created exclusively) on first use.
func loadOrCreateDevFile(dir, name, what string, generate func() string, check func(string) error) (value string, created bool, err error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		value = strings.TrimSpace(string(b))
		if err := check(value); err != nil {
			return "", false, fmt.Errorf("%s %v: delete it and start again to generate a new one", path, err)
		}
		return value, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", false, fmt.Errorf("read the development %s: %w", what, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("keep the development %s: %w", what, err)
	}
	value = generate()
	// O_EXCL: two first starts at once must not each keep a different one.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("keep the development %s: %w", what, err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("keep the development %s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("keep the development %s: %w", what, err)
	}
	return value, true, nil
}

// devBanner is what serve --dev tells the developer at start.
type devBanner struct {
	addr        string // serve's listen address
	sendAddr    string // where `webhookd send` sends without --to (WEBHOOKD_ADDR)
	databaseURL string
	secret      devFile
	key         devFile
	seal        time.Duration
	adminAddr   string // the admin console's listen address
}

// print writes the banner. Secrets are printed only on the start that
// generated them; the checkpoint key never (it is a signing key).
func (b devBanner) print(w io.Writer) {
	fmt.Fprintf(w, "webhookd: development mode (--dev): the data is in an embedded PostgreSQL under %s, kept across restarts; migrations are applied at start.\n",
		filepath.Join(devDir, devPostgresDir))
	fmt.Fprintf(w, "webhookd: DATABASE_URL=%s (for psql; webhookd commands run in this folder find it by themselves)\n", b.databaseURL)
	switch {
	case b.secret.created:
		fmt.Fprintf(w, "webhookd: generated a signing secret and kept it in %s: %s\n", b.secret.file, b.secret.value)
		fmt.Fprintf(w, "webhookd: WARNING: this secret is for development only. In production set CLERK_WEBHOOK_SIGNING_SECRET to the Signing Secret Clerk's dashboard shows for your endpoint.\n")
	case b.secret.file != "":
		fmt.Fprintf(w, "webhookd: using the development signing secret kept in %s (development only).\n", b.secret.file)
	}
	switch {
	case b.key.created:
		fmt.Fprintf(w, "webhookd: generated a checkpoint signing key and kept it in %s (development only); checkpoints are signed every %s, and export and verify run here use it.\n", b.key.file, b.seal)
	case b.key.file != "":
		fmt.Fprintf(w, "webhookd: using the development checkpoint signing key kept in %s (development only); checkpoints are signed every %s.\n", b.key.file, b.seal)
	}
	cmd := "bin/webhookd send user.created"
	if to := webhookURL(b.addr); to != webhookURL(b.sendAddr) {
		cmd += " --to " + to
	}
	if b.adminAddr != "" {
		fmt.Fprintf(w, "webhookd: the audit console is at http://%s/ (sign in with a token: bin/webhookd tokens create --name me --role admin)\n", b.adminAddr)
	}
	fmt.Fprintf(w, "webhookd: send a sample event with:\n\n    %s\n\n", cmd)
}

// webhookURL is the webhook endpoint of a server listening on addr, as a
// client on the same machine reaches it.
func webhookURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080" + ingress.WebhookPath
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + ingress.WebhookPath
}
