package devdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webhookd/webhookd/internal/testlog"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// PostgreSQL refuses root, so the tests that start it run only as another user:
//
//	go test -c -o /tmp/devdb.test ./internal/devdb
//	su webhookd-dev -c 'cd /tmp && /tmp/devdb.test -test.v'
func skipIfRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("PostgreSQL refuses root; run the compiled test binary as a non-root user (see skipIfRoot)")
	}
}

func TestStart_RefusesRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root is refused")
	}
	dir := filepath.Join(t.TempDir(), "pg")

	_, err := Start(t.Context(), Options{Dir: dir})
	require.ErrorIs(t, err, ErrRoot)
	require.EqualError(t, err, "devdb: PostgreSQL refuses to run as root")
	require.NoDirExists(t, dir, "refused before touching the disk")

	_, _, err = ForTests(t.Context())
	require.ErrorIs(t, err, ErrRoot)

	_, err = Open(t.Context(), Options{Dir: dir})
	require.ErrorIs(t, err, ErrRoot)
	require.NoDirExists(t, dir)
}

func TestStart_KeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	o := Options{Dir: t.TempDir(), Port: freeTestPort(t), Database: "kept", Logger: testLogger(t)}

	s := start(t, o)
	require.Equal(t, fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/kept?sslmode=disable", o.Port), s.URL())
	execSQL(t, s.URL(), "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before restart')")
	require.NoError(t, s.Stop())
	require.NoError(t, s.Stop(), "a second Stop does nothing")

	s = start(t, o)
	var note string
	queryRow(t, s.URL(), "SELECT note FROM kept", &note)
	require.Equal(t, "written before restart", note)
}

func TestStart_DirInUse(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	dir := t.TempDir()
	first := start(t, Options{Dir: dir, Port: freeTestPort(t), Logger: testLogger(t)})

	_, err := Start(t.Context(), Options{Dir: dir, Port: freeTestPort(t)})
	require.ErrorIs(t, err, ErrDirInUse)
	var inUse *DirInUseError
	require.ErrorAs(t, err, &inUse)
	require.Equal(t, DirInUseError{Dir: dir, PID: os.Getpid()}, *inUse)
	require.EqualError(t, err, fmt.Sprintf("devdb: %s is used by pid %d: stop that process, or use another directory", dir, os.Getpid()))

	var one int
	queryRow(t, first.URL(), "SELECT 1", &one)
	require.Equal(t, 1, one, "the first server is untouched")
}

func TestStart_PortInUse(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	port := l.Addr().(*net.TCPAddr).Port

	_, err = Start(t.Context(), Options{Dir: t.TempDir(), Port: uint32(port)})
	require.ErrorIs(t, err, ErrPortInUse)
	require.EqualError(t, err, fmt.Sprintf("devdb: port already in use: 127.0.0.1:%d is taken (another PostgreSQL or webhookd?): stop what holds it, or choose another port", port))
}

// Open joins the server another Server runs on the same Dir, whatever port
// it is given, and leaves it running on Stop; with none running it starts
// one, as Start does.
func TestOpen_JoinsRunningServer(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	dir := t.TempDir()
	o := Options{Dir: dir, Port: freeTestPort(t), Database: "joined", Logger: testLogger(t)}
	first := start(t, o)
	require.False(t, first.Joined())
	execSQL(t, first.URL(), "CREATE TABLE shared (id int)")

	joined, err := Open(t.Context(), Options{Dir: dir, Port: freeTestPort(t), Database: "joined"})
	require.NoError(t, err)
	require.True(t, joined.Joined())
	require.Equal(t, first.URL(), joined.URL(), "the running server's port, not the one asked for")
	require.NoError(t, joined.Stop())
	var n int
	queryRow(t, first.URL(), "SELECT count(*) FROM shared", &n)
	require.Equal(t, 0, n, "the first server still runs after the joined one stopped")

	// The lock says which process holds Dir and its port.
	pid, port, ok := readLock(dir)
	require.True(t, ok)
	require.Equal(t, os.Getpid(), pid)
	require.Equal(t, o.Port, port)

	// Nothing running: Open starts it, and its Stop stops it.
	require.NoError(t, first.Stop())
	own, err := Open(t.Context(), o)
	require.NoError(t, err)
	require.False(t, own.Joined())
	queryRow(t, own.URL(), "SELECT count(*) FROM shared", &n)
	require.NoError(t, own.Stop())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, own.URL())
	require.Error(t, err, "stopped")
}

// A lock file without a valid port (half-written, or from an older
// webhookd) names no server to join: Open keeps waiting for one.
func TestReadLock_RefusesIncompleteLocks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, content := range []string{"", "123\n", "123\nnot-a-port\n", "123\n0\n", "123\n70000\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "lock"), []byte(content), 0o600))
		_, port, ok := readLock(dir)
		require.False(t, ok, "%q", content)
		require.Zero(t, port)
	}
}

func TestStart_StopsServerLeftRunning(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	o := Options{Dir: t.TempDir(), Port: freeTestPort(t), Logger: testLogger(t)}
	crashed := start(t, o)
	execSQL(t, crashed.URL(), "CREATE TABLE survived (id int)")
	// What a process killed without Stop leaves: its lock gone, its server running.
	require.NoError(t, crashed.lock.Close())
	crashed.stopped = true

	s := start(t, o)
	var n int
	queryRow(t, s.URL(), "SELECT count(*) FROM survived", &n)
	require.Equal(t, 0, n)
}

func TestStart_KeepsDataOfOtherMajorVersion(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(dataDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "PG_VERSION"), []byte("12\n"), 0o600))

	_, err := Start(t.Context(), Options{Dir: dir, Port: freeTestPort(t)})
	require.ErrorContains(t, err, "devdb: "+dataDir+" holds PostgreSQL 12 data, but ")
	require.ErrorContains(t, err, "or delete "+dataDir+" to start with an empty database")
	require.FileExists(t, filepath.Join(dataDir, "PG_VERSION"), "data of another version is never wiped")
}

func TestForTests(t *testing.T) {
	t.Parallel()
	skipIfRoot(t)
	url, stop, err := ForTests(t.Context())
	require.NoError(t, err)

	var db string
	queryRow(t, url, "SELECT current_database()", &db)
	require.Equal(t, "webhookd", db)

	stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err, "stopped")
}

func TestFindBinaries(t *testing.T) {
	dir, ok := FindBinaries()
	if !ok {
		t.Skip("no PostgreSQL 13+ installed; Start downloads one")
	}
	require.FileExists(t, filepath.Join(dir, "bin", "pg_ctl"))

	t.Setenv(EnvBinaries, filepath.Join(dir, "bin"))
	got, ok := FindBinaries()
	require.True(t, ok, "the bin directory itself is accepted")
	require.Equal(t, dir, got)

	t.Setenv(EnvBinaries, t.TempDir())
	_, ok = FindBinaries()
	require.False(t, ok, "only the named directory is considered")
}

func TestParseMajor(t *testing.T) {
	t.Parallel()
	for out, want := range map[string]int{
		"postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n": 15,
		"postgres (PostgreSQL) 18.3\n":                           18,
		"postgres (PostgreSQL) 9.6.24\n":                         9,
		"postgres (PostgreSQL) 17beta1\n":                        17,
	} {
		got, err := parseMajor(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got, out)
	}
	_, err := parseMajor("pg_ctl: command not found")
	require.EqualError(t, err, `unrecognised postgres --version output "pg_ctl: command not found"`)
}

func start(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start(t.Context(), o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

func freeTestPort(t *testing.T) uint32 {
	t.Helper()
	port, err := freePort()
	require.NoError(t, err)
	return port
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), sql)
	require.NoError(t, err)
}

func queryRow(t *testing.T, url, sql string, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(t.Context(), sql).Scan(dest...))
}

// testLogger keeps PostgreSQL's output and shows it only when the test fails.
func testLogger(t *testing.T) *syncBuffer {
	b := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("PostgreSQL output:\n" + b.String())
		}
	})
	return b
}

type syncBuffer = testlog.Buffer
