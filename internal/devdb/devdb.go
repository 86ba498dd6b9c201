// Package devdb runs a development PostgreSQL for `make run` and `make test` on a
// machine that has nothing but Go, using github.com/fergusstrange/embedded-postgres.
//
// Contract:
//   - Start never runs as root: PostgreSQL refuses it, so Start returns ErrRoot before
//     touching the disk. The caller says what to use instead (an existing PostgreSQL).
//   - Data lives in Options.Dir/data and is kept across Stop and Start. The library
//     empties its runtime directory (Dir/runtime) at every start, so nothing that must
//     survive is kept there. Data written by another PostgreSQL major version is never
//     wiped: Start returns an error naming both versions instead.
//   - One Server per Dir: a second Start on the same Dir, in this process or another,
//     fails with a *DirInUseError (matching ErrDirInUse) naming the holder's pid while
//     the first runs. Open instead joins the server already running on Dir. A server
//     left running by a process that died without Stop is shut down (fast mode) by the
//     next Start on that Dir.
//   - A busy port fails with ErrPortInUse, naming the port.
//   - Error texts name no Go API: callers add the setting a user changes.
//   - Installed PostgreSQL binaries (13 or newer) are preferred, see FindBinaries;
//     otherwise the library downloads them once into Options.CacheDir.
//   - The server listens on 127.0.0.1 only, with user postgres and password postgres.
package devdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
	"github.com/jackc/pgx/v5"
)

// Defaults applied by Start to zero Options fields.
const (
	// DefaultDir is where the development database lives, relative to the working directory.
	DefaultDir = ".webhookd/postgres"
	// DefaultPort is not 5432 so that a system PostgreSQL can keep that one.
	DefaultPort uint32 = 54329
	// DefaultDatabase is the database created on first start and named in URL.
	DefaultDatabase = "webhookd"
)

const (
	user     = "postgres"
	password = "postgres"

	// startTimeout bounds the library's readiness check when ctx has no sooner deadline.
	startTimeout = 30 * time.Second
)

// ErrRoot is returned (wrapped) by Start, Open and ForTests when the process runs as
// root. The caller adds what to do instead (which setting names an existing
// PostgreSQL), since that differs between programs.
var ErrRoot = errors.New("PostgreSQL refuses to run as root")

// ErrPortInUse is returned (wrapped, with the port) when something already listens on
// the requested port.
var ErrPortInUse = errors.New("port already in use")

// ErrDirInUse is matched (errors.Is) by the *DirInUseError Start returns when another
// Server, in this process or another, already runs on the same Dir.
var ErrDirInUse = errors.New("development PostgreSQL directory already in use")

// DirInUseError says which process holds Dir.
type DirInUseError struct {
	// Dir is the absolute directory.
	Dir string
	// PID is the holder's process id, 0 if it could not be read.
	PID int
}

func (e *DirInUseError) Error() string {
	return fmt.Sprintf("devdb: %s is used by %s: stop that process, or use another directory", e.Dir, holderName(e.PID))
}

// Is makes errors.Is(err, ErrDirInUse) true.
func (e *DirInUseError) Is(target error) bool { return target == ErrDirInUse }

func holderName(pid int) string {
	if pid <= 0 {
		return "another process"
	}
	return "pid " + strconv.Itoa(pid)
}

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Dir holds everything devdb writes: the data in Dir/data (kept across restarts),
	// the library's runtime directory Dir/runtime (emptied at every start, also holds
	// the Unix socket), downloaded binaries in Dir/cache unless CacheDir says otherwise,
	// and the lock file Dir/lock. Relative paths are resolved against the working
	// directory. Defaults to ./.webhookd/postgres.
	Dir string

	// Port is the TCP port on 127.0.0.1. Defaults to 54329, so that a system
	// PostgreSQL may keep 5432.
	Port uint32

	// Database is created on first start (and on any later start that misses it) and
	// is the database named in URL. Defaults to "webhookd".
	Database string

	// Logger receives PostgreSQL's own output (initdb, pg_ctl, server log), copied at
	// start and stop. Defaults to io.Discard, because the library prints a lot.
	Logger io.Writer

	// CacheDir keeps the PostgreSQL archive the library downloads when FindBinaries
	// finds no installed PostgreSQL, so that it is downloaded only once. Unused when
	// binaries are installed. Defaults to Dir/cache.
	CacheDir string
}

// Server is a running development PostgreSQL started by Start. Its methods are safe
// for concurrent use.
type Server struct {
	url    string
	joined bool

	mu      sync.Mutex
	pg      *embeddedpostgres.EmbeddedPostgres
	lock    *os.File // flock on Dir/lock, held until Stop
	stopped bool
}

// Start starts (initialising on first use) a PostgreSQL under o.Dir and returns when
// the database o.Database accepts connections. ctx bounds the waits devdb controls;
// initdb and pg_ctl, run by the library, are bounded by their own timeouts.
func Start(ctx context.Context, o Options) (*Server, error) {
	// initdb and postgres refuse root with a long log; say it in one line first.
	if os.Geteuid() == 0 {
		return nil, fmt.Errorf("devdb: %w", ErrRoot)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("devdb: %w", err)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(o.Dir, "data")
	runtimeDir := filepath.Join(o.Dir, "runtime")

	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("devdb: create %s: %w", o.Dir, err)
	}
	lock, err := lockDir(o.Dir, o.Port)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			_ = lock.Close()
		}
	}()

	if err := stopOrphan(ctx, dataDir); err != nil {
		return nil, err
	}
	if err := checkPort(o.Port); err != nil {
		return nil, err
	}

	dataMajor, err := dataDirMajor(dataDir)
	if err != nil {
		return nil, err
	}
	bin, err := chooseBinaries(ctx, dataDir, dataMajor)
	if err != nil {
		return nil, err
	}

	cfg := embeddedpostgres.DefaultConfig().
		Version(bin.version).
		Port(o.Port).
		// The library only creates its database on first init; Start creates o.Database
		// itself so that a changed name or an interrupted first start still gets it.
		Database("postgres").
		Username(user).
		Password(password).
		DataPath(dataDir).
		RuntimePath(runtimeDir).
		CachePath(o.CacheDir).
		// Without these initdb takes the locale from the environment, which is often
		// unset under su or in CI and then gives SQL_ASCII.
		Locale("C").
		Encoding("UTF8").
		StartParameters(map[string]string{
			"listen_addresses": "127.0.0.1",
			// Debian's default socket directory, /var/run/postgresql, belongs to root.
			"unix_socket_directories": socketDir(runtimeDir, o.Port),
		}).
		StartTimeout(timeoutFrom(ctx)).
		Logger(o.Logger)
	if bin.dir != "" {
		cfg = cfg.BinariesPath(bin.dir)
	}

	pg := embeddedpostgres.NewDatabase(cfg)
	if err := pg.Start(); err != nil {
		if bin.dir == "" {
			return nil, fmt.Errorf("devdb: no PostgreSQL 13+ installed (install one, e.g. apt-get install postgresql, or set %s), and starting downloaded PostgreSQL %s failed: %w", EnvBinaries, bin.version, err)
		}
		return nil, fmt.Errorf("devdb: start PostgreSQL %d from %s with data in %s: %w", bin.major, bin.dir, dataDir, err)
	}

	s := &Server{
		url:  connURL(o.Port, o.Database),
		pg:   pg,
		lock: lock,
	}
	if err := ensureDatabase(ctx, connURL(o.Port, "postgres"), o.Database); err != nil {
		_ = pg.Stop()
		return nil, err
	}
	started = true
	return s, nil
}

// Open returns the server running on o.Dir: when another process (or Server) already
// runs one there, Open waits until its database o.Database accepts connections and
// joins it (Joined is true; the port is the one that process chose, whatever o.Port
// says, and Stop leaves it running); otherwise it starts one as Start does. ctx bounds
// the wait; when it ends first, the *DirInUseError is returned.
func Open(ctx context.Context, o Options) (*Server, error) {
	for {
		s, err := Start(ctx, o)
		var inUse *DirInUseError
		if !errors.As(err, &inUse) {
			return s, err
		}
		if s := join(ctx, inUse.Dir, o); s != nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// join connects to the database o.Database of the server whose port the holder of
// dir's lock recorded; nil when there is none yet.
func join(ctx context.Context, dir string, o Options) *Server {
	_, port, ok := readLock(dir)
	if !ok {
		return nil
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	url := connURL(port, o.Database)
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(pingCtx, url)
	if err != nil {
		return nil
	}
	_ = conn.Close(context.Background())
	return &Server{url: url, joined: true}
}

// URL is the connection URL of the database named by Options.Database, in the form
// postgres://postgres:postgres@127.0.0.1:PORT/DB?sslmode=disable.
func (s *Server) URL() string { return s.url }

// Joined tells whether Open joined a server another process runs (which Stop leaves
// running) rather than starting one.
func (s *Server) Joined() bool { return s.joined }

// Stop shuts PostgreSQL down (pg_ctl stop: fast mode, waiting) and releases Dir. The data
// stays in Dir/data. Calling Stop again does nothing and returns nil. A joined server
// (see Open) is left running.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.joined {
		return nil
	}
	err := s.pg.Stop()
	// Release Dir even when pg_ctl failed: the next Start stops a server left running.
	if cerr := s.lock.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("devdb: stop PostgreSQL: %w", err)
	}
	return nil
}

// ForTests starts a throwaway PostgreSQL in a new temporary directory on a free port
// and returns its URL and a stop function that shuts it down and removes the directory.
// Downloaded binaries (when none are installed) are cached in the user's cache
// directory so that they are downloaded once per machine, not once per test run.
// It is meant for the project's test helper when TEST_DATABASE_URL is unset.
func ForTests(ctx context.Context) (url string, stop func(), err error) {
	if os.Geteuid() == 0 {
		return "", nil, fmt.Errorf("devdb: %w", ErrRoot)
	}
	dir, err := os.MkdirTemp("", "webhookd-devdb-")
	if err != nil {
		return "", nil, fmt.Errorf("devdb: create temporary directory: %w", err)
	}
	cacheDir := filepath.Join(dir, "cache")
	if userCache, err := os.UserCacheDir(); err == nil {
		cacheDir = filepath.Join(userCache, "webhookd", "postgres")
	}

	var s *Server
	// The free port can be taken between closing the probe and PostgreSQL binding it.
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			_ = os.RemoveAll(dir)
			return "", nil, perr
		}
		s, err = Start(ctx, Options{Dir: dir, Port: port, CacheDir: cacheDir})
		if err == nil || !errors.Is(err, ErrPortInUse) || attempt == 2 {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return s.URL(), func() {
		_ = s.Stop()
		_ = os.RemoveAll(dir)
	}, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, fmt.Errorf("devdb: resolve Dir %q: %w", o.Dir, err)
	}
	o.Dir = abs
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Port > 65535 {
		return o, fmt.Errorf("devdb: Port %d is not a TCP port (1-65535)", o.Port)
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Logger == nil {
		o.Logger = io.Discard
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(o.Dir, "cache")
	}
	return o, nil
}

func connURL(port uint32, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(port), 10)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// checkPort gives a clearer answer than the library's "process already listening".
func checkPort(port uint32) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(port), 10)))
	if err != nil {
		return fmt.Errorf("devdb: %w: 127.0.0.1:%d is taken (another PostgreSQL or webhookd?): stop what holds it, or choose another port", ErrPortInUse, port)
	}
	return l.Close()
}

func freePort() (uint32, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devdb: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("devdb: find a free port: %w", err)
	}
	return uint32(port), nil
}

// socketDir keeps the socket in the runtime directory, or turns Unix sockets off when
// that path would exceed the kernel's limit (104 bytes on macOS, 108 on Linux);
// clients use TCP either way.
func socketDir(runtimeDir string, port uint32) string {
	socket := filepath.Join(runtimeDir, ".s.PGSQL."+strconv.FormatUint(uint64(port), 10))
	if len(socket) >= 104 {
		return ""
	}
	return runtimeDir
}

func timeoutFrom(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < startTimeout {
			return max(left, time.Second)
		}
	}
	return startTimeout
}

// dataDirMajor reads the major version of an initialised data directory, 0 if none.
func dataDirMajor(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("devdb: read data version: %w", err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("devdb: %s/PG_VERSION holds %q, not a PostgreSQL major version", dataDir, strings.TrimSpace(string(b)))
	}
	return major, nil
}

func ensureDatabase(ctx context.Context, adminURL, database string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("devdb: connect to new PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&exists); err != nil {
		return fmt.Errorf("devdb: look up database %q: %w", database, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()); err != nil {
		return fmt.Errorf("devdb: create database %q: %w", database, err)
	}
	return nil
}

// readLock reads the pid and port the holder of dir's lock wrote (lockDir).
func readLock(dir string) (pid int, port uint32, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "lock"))
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Fields(string(b))
	if len(lines) < 2 {
		if len(lines) == 1 {
			pid, _ = strconv.Atoi(lines[0])
		}
		return pid, 0, false
	}
	pid, _ = strconv.Atoi(lines[0])
	p, err := strconv.ParseUint(lines[1], 10, 16)
	if err != nil || p == 0 {
		return pid, 0, false
	}
	return pid, uint32(p), true
}
