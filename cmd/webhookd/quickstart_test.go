package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
)

// skipIfRoot skips tests that start the embedded PostgreSQL, which refuses
// root. Run them as another user:
//
//	go test -c -o /tmp/webhookd.test ./cmd/webhookd
//	setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp /tmp/webhookd.test -test.run DevMode
//
// (.ci/run proves the same path with the built binary as webhookd-ci.)
func skipIfRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("the embedded PostgreSQL refuses root; run the compiled test binary as a non-root user (see skipIfRoot)")
	}
}

// process is a webhookd command running in the background.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan error
}

func startMain(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &process{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{runMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LOG_FORMAT=json"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill()
		}
	})
	return p
}

// waitReady waits until /readyz on addr answers 200.
func (p *process) waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("webhookd exited before it was ready (%v):\n%s\n%s", err, p.stdout, p.stderr)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("webhookd was not ready on %s:\n%s\n%s", addr, p.stdout, p.stderr)
}

// stop sends SIGTERM and returns the exit status.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	err := <-p.done
	p.done <- err // for the cleanup
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode()
	}
	require.NoError(t, err)
	return 0
}

// The quick start, as a newcomer runs it: `make run` (serve --dev) in a
// fresh folder, then in another terminal, with nothing set, send, export
// and verify. Every other command finds the development database too, the
// banner's DATABASE_URL works for psql, and the mistakes a newcomer makes
// (a second make run, a taken port) are one line saying what to do.
func TestDevModeQuickStart(t *testing.T) {
	skipIfRoot(t)
	t.Parallel()
	work := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	pgPort := freeTCPPort(t)
	// WEBHOOKD_ADDR as a developer exports it; send follows it.
	shell := []string{"WEBHOOKD_ADDR=" + addr}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	serve := startMain(t, work, append(shell, fmt.Sprintf("WEBHOOKD_DEV_PORT=%d", pgPort), "WEBHOOKD_ADMIN_ADDR="+adminAddr), "serve", "--dev")
	serve.waitReady(t, addr)

	devURL := fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/webhookd?sslmode=disable", pgPort)
	banner := serve.stdout.String()
	require.Contains(t, banner, "webhookd: DATABASE_URL="+devURL+" (for psql; webhookd commands run in this folder find it by themselves)\n")
	require.Regexp(t, `webhookd: generated a signing secret and kept it in \.webhookd/signing-secret: whsec_`, banner)
	require.Contains(t, banner, "webhookd: generated a checkpoint signing key and kept it in .webhookd/signing-key (development only); checkpoints are signed every 1s, and export and verify run here use it.\n")
	require.True(t, strings.HasSuffix(banner, "\n    bin/webhookd send user.created\n\n"), banner)
	require.Contains(t, banner, "webhookd: the audit console is at http://"+adminAddr+"/ (sign in with a token: bin/webhookd tokens create --name me --role admin)\n")
	for _, name := range []string{devSecretFile, devKeyFile} {
		info, err := os.Stat(filepath.Join(work, devDir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), name)
	}
	keyID := seal.KeyID(devPublicKey(t, filepath.Join(work, devDir)))

	// Before any event there is nothing sealed to export: say what to do.
	_, stderr, code := runMain(t, work, nil, "export", "--out", "empty")
	require.Equal(t, 1, code)
	require.True(t, strings.HasSuffix(stderr, "\nwebhookd: export: the development ledger has no signed checkpoint yet: run `webhookd serve --dev` here and send an event (`webhookd send user.created`); a checkpoint is signed within a second\n"), stderr)
	require.NoDirExists(t, filepath.Join(work, "empty"))

	// send: its default --to follows WEBHOOKD_ADDR; the secret is found.
	stdout, stderr, code := runMain(t, work, shell, "send", "user.created")
	require.Equal(t, 0, code, stderr)
	m := sentLine.FindStringSubmatch(strings.TrimSuffix(stdout, "\n"))
	require.NotNil(t, m, stdout)
	subject, msgID := m[1], m[2]

	// export and verify at once, with nothing set at all.
	stdout, stderr, code = runMain(t, work, nil, "export", "--out", "b")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "webhookd: development mode (DATABASE_URL is not set and .webhookd/ is here): using the development database under .webhookd/postgres (joined the one webhookd serve --dev runs)\n")
	require.Contains(t, stdout, `"complete": true,`)
	require.FileExists(t, filepath.Join(work, "b", bundle.ManifestSignatureFile), "signed with the development key")
	entries, err := os.ReadFile(filepath.Join(work, "b", "entries.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(entries), msgID, "the event sent a moment ago is in the bundle")

	stdout, stderr, code = runMain(t, work, nil, "verify", "b")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^OK: \d+ entries \(0 redacted, inclusion only\) against checkpoint tree size \d+ signed by key `+keyID+` \(the development key in \.webhookd/signing-key\); manifest signed by the same key\n$`, stdout)
	require.True(t, strings.HasPrefix(stderr, "webhookd: development mode: trusting the development checkpoint key in .webhookd/signing-key (key id "+keyID+"); --public-key names another\n"), stderr)

	// The trust comes from .webhookd/signing-key, not from the key the
	// bundle carries: with another development key the bundle is refused.
	keyPath := filepath.Join(work, devDir, devKeyFile)
	kept, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, []byte(sealKeyText+"\n"), 0o600))
	stdout, _, code = runMain(t, work, nil, "verify", "b")
	require.Equal(t, 1, code)
	require.Contains(t, stdout, "signed by key "+keyID+", which is not a trusted key")
	require.NoError(t, os.WriteFile(keyPath, kept, 0o600))

	// Every other command finds the database by itself.
	stdout, stderr, code = runMain(t, work, nil, "verify", "--db")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^OK: \d+ sealed entries, \d+ checkpoints`, stdout)
	stdout, stderr, code = runMain(t, work, nil, "users", "assign", "--clerk-id", subject, "--role", "ADMIN", "--reason", "quick start")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, `"status":"recorded"`)
	// The console's walkthrough: a token, then the API and the console
	// answer it.
	stdout, stderr, code = runMain(t, work, nil, "tokens", "create", "--name", "me", "--role", "admin")
	require.Equal(t, 0, code, stderr)
	token := strings.TrimSpace(stdout)
	require.Regexp(t, `^whdadm_[A-Za-z0-9_-]{43}$`, token)
	req, err := http.NewRequest("GET", "http://"+adminAddr+"/api/users/"+subject, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, "%s", body)
	require.Contains(t, string(body), `"clerk_id":"`+subject+`"`)
	resp, err = http.Get("http://" + adminAddr + "/signin")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	stdout, stderr, code = runMain(t, work, nil, "migrate")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^schema is up to date at version \d+\n$`, stdout)
	stdout, stderr, code = runMain(t, work, []string{"WEBHOOKD_DEV=true"}, "replay", "users", "--check")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "webhookd: development mode (--dev): using the development database")
	require.Contains(t, stdout, `"equal": true`)

	// The banner's DATABASE_URL is the database (what psql would use).
	conn, err := pgx.Connect(t.Context(), devURL)
	require.NoError(t, err)
	var role string
	require.Eventually(t, func() bool {
		return conn.QueryRow(t.Context(), `SELECT role FROM users WHERE clerk_id = $1`, subject).Scan(&role) == nil && role == "ADMIN"
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, conn.Close(context.Background()))

	// A second make run in the same folder, and one in another folder on
	// the same port: one line each, saying what to do.
	_, stderr, code = runMain(t, work, shell, "serve", "--dev", "--dev-port", fmt.Sprint(freeTCPPort(t)))
	require.Equal(t, 1, code)
	require.Equal(t, fmt.Sprintf("webhookd: development mode: another webhookd (pid %d) already runs the development database of this folder (.webhookd/postgres): stop it (Ctrl-C where it runs) and start again, or run this one from another folder\n", serve.cmd.Process.Pid), stderr)
	_, stderr, code = runMain(t, t.TempDir(), nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--dev-port", fmt.Sprint(pgPort))
	require.Equal(t, 1, code)
	require.Equal(t, fmt.Sprintf("webhookd: development mode: port 127.0.0.1:%d, the development PostgreSQL's, is taken (another webhookd serve --dev in another folder?): stop what holds it, or choose another port with WEBHOOKD_DEV_PORT (--dev-port)\n", pgPort), stderr)

	require.Equal(t, 0, serve.stop(t), serve.stderr.String())
	// Durations in log lines read as durations.
	require.Contains(t, serve.stderr.String(), `"msg":"webhookd_stopping","drain_timeout":"15s"`)
	require.Contains(t, serve.stderr.String(), `"msg":"embedded_postgres_stopped"`)

	// With serve stopped, a command starts the database for its own run
	// (on WEBHOOKD_DEV_PORT) and stops it after: the data is still there.
	env := []string{fmt.Sprintf("WEBHOOKD_DEV_PORT=%d", freeTCPPort(t))}
	stdout, stderr, code = runMain(t, work, env, "replay", "users", "--check")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "(started it for this command and stops it after)\n")
	require.Regexp(t, regexp.MustCompile(`"live_rows": [1-9]`), stdout)
	_, stderr, code = runMain(t, work, env, "migrate")
	require.Equal(t, 0, code, "the first run released the folder: %s", stderr)
}
