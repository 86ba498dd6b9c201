package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runMainEnv, set in the environment of the test binary, makes it run
// webhookd's main with the remaining arguments instead of the tests: the
// real command line (kong, environment variables, exit status, stderr).
const runMainEnv = "WEBHOOKD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs `webhookd args…` in dir with only env (plus PATH and HOME)
// in its environment, and returns its stdout, stderr and exit status.
func runMain(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), exe, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{runMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LOG_FORMAT=json"}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// testGlobals captures what a command prints on stdout; logs and notes on
// stderr are dropped unless the test reads g.Stderr.
func testGlobals() (*Globals, *syncBuffer) {
	out := &syncBuffer{}
	return &Globals{LogFormat: "json", LogLevel: "error", Stdout: out, Stderr: &syncBuffer{}}, out
}

// quietGlobals is testGlobals without the output.
func quietGlobals() *Globals {
	g, _ := testGlobals()
	return g
}

func freeTCPPort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

const noDatabaseLine = "webhookd: DATABASE_URL is not set: set it to your PostgreSQL (postgres://user:password@host:5432/db), or run `webhookd %s --dev` (WEBHOOKD_DEV=true) to use the development database under .webhookd/\n"

// serve without DATABASE_URL and without --dev is a mistake in production
// (a missing or misspelt variable): it exits 2 with one line naming both,
// starts nothing and writes nothing, even where development mode ran
// before.
func TestServeWithoutDatabaseOrDevExits2(t *testing.T) {
	t.Parallel()
	want := strings.Replace(noDatabaseLine, "%s", "serve", 1)
	empty := t.TempDir()
	usedBefore := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(usedBefore, devDir, devPostgresDir), 0o700))
	for _, tc := range []struct {
		name string
		dir  string
		env  []string
		args []string
	}{
		{"nothing set", empty, nil, []string{"serve"}},
		{"with a secret", empty, []string{"CLERK_WEBHOOK_SIGNING_SECRET=" + testSecret}, []string{"serve", "--migrate"}},
		{"misspelt variable", empty, []string{"DATABSE_URL=postgres://u@h/db"}, []string{"serve"}},
		{"empty variable", empty, []string{"DATABASE_URL="}, []string{"serve"}},
		{"WEBHOOKD_DEV=false", empty, []string{"WEBHOOKD_DEV=false"}, []string{"serve"}},
		{"where serve --dev ran before", usedBefore, nil, []string{"serve"}},
	} {
		stdout, stderr, code := runMain(t, tc.dir, tc.env, tc.args...)
		require.Equal(t, 2, code, tc.name)
		require.Equal(t, want, stderr, tc.name)
		require.Empty(t, stdout, tc.name)
	}
	entries, err := os.ReadDir(empty)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written")
}

// Every command that needs a database, given none and run where
// development mode never ran, exits 2 with the same line naming itself.
func TestCommandsWithoutDatabaseExit2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"migrate":      {"migrate"},
		"replay":       {"replay", "users"},
		"users assign": {"users", "assign", "--clerk-id", "user_2abc", "--role", "ADMIN"},
		"export":       {"export", "--out", "b"},
		"verify --db":  {"verify", "--db"},
	} {
		stdout, stderr, code := runMain(t, dir, nil, args...)
		require.Equal(t, 2, code, name)
		require.Equal(t, strings.Replace(noDatabaseLine, "%s", name, 1), stderr, name)
		require.Empty(t, stdout, name)
	}
	require.NoDirExists(t, filepath.Join(dir, "b"))
	require.NoDirExists(t, filepath.Join(dir, devDir))
}

// DATABASE_URL and --dev together: one is a mistake; exit 2 naming both,
// whichever way each is given.
func TestDatabaseURLAndDevTogetherExit2(t *testing.T) {
	t.Parallel()
	const want = "webhookd: DATABASE_URL and --dev (WEBHOOKD_DEV) are both set: unset DATABASE_URL to use the development database, or leave out --dev to use DATABASE_URL\n"
	url := "postgres://postgres@127.0.0.1:1/x"
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{[]string{"DATABASE_URL=" + url}, []string{"serve", "--dev"}},
		{[]string{"DATABASE_URL=" + url, "WEBHOOKD_DEV=true"}, []string{"serve"}},
		{[]string{"WEBHOOKD_DEV=1"}, []string{"serve", "--database-url", url}},
		{[]string{"DATABASE_URL=" + url}, []string{"export", "--dev", "--out", "b"}},
		{[]string{"DATABASE_URL=" + url}, []string{"migrate", "--dev"}},
		{[]string{"DATABASE_URL=" + url}, []string{"verify", "--dev", "b"}},
	} {
		_, stderr, code := runMain(t, t.TempDir(), tc.env, tc.args...)
		require.Equal(t, 2, code, "%v %v", tc.env, tc.args)
		require.Equal(t, want, stderr, "%v %v", tc.env, tc.args)
	}
}

// Help names each variable once: kong adds ($VAR) to every flag with an env
// tag, so a help text must not name it again.
func TestHelpNamesEachVariableOnce(t *testing.T) {
	t.Parallel()
	variable := regexp.MustCompile(`\b(?:DATABASE_URL|WEBHOOKD_[A-Z_]+|CLERK_WEBHOOK_[A-Z_]+|LOG_FORMAT|LOG_LEVEL)\b`)
	for _, command := range []string{"serve", "migrate", "send", "users assign", "replay", "bench", "export", "verify", "keygen"} {
		stdout, stderr, code := runMain(t, t.TempDir(), nil, append(strings.Fields(command), "--help")...)
		require.Equal(t, 0, code, "%s: %s", command, stderr)
		// One flag's help may wrap over several lines: split the help at
		// each flag.
		flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--`).Split(stdout, -1)
		require.Greater(t, len(flags), 2, command)
		for _, help := range flags {
			seen := map[string]int{}
			for _, v := range variable.FindAllString(help, -1) {
				seen[v]++
			}
			for v, n := range seen {
				require.Equal(t, 1, n, "%s --help names %s %d times in:\n%s", command, v, n, help)
			}
		}
	}
}
