// Command devpg runs a command with TEST_DATABASE_URL pointing at a
// throwaway embedded PostgreSQL (see package devdb), so that `make test`
// passes on a machine that has nothing but Go:
//
//	go run ./internal/devdb/cmd/devpg -- go test ./...
//
// The database is named "test", like the system one CI uses. PostgreSQL runs
// in a new temporary directory on a free port and is stopped, and the
// directory removed, when the command ends (or devpg is interrupted). devpg
// exits with the command's status. It refuses to run as root, as PostgreSQL
// does, naming the command that runs the tests on an existing PostgreSQL
// instead (errRoot).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/webhookd/webhookd/internal/devdb"
)

// startTimeout bounds initdb and the first start.
const startTimeout = 2 * time.Minute

// errRoot is what devpg says as root: `make test` reads TEST_DATABASE_URL,
// not DATABASE_URL, so the exact command is named.
var errRoot = fmt.Errorf("%w, so the tests cannot have their own: run `make test` as a non-root user, or on an existing PostgreSQL with: TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' make test", devdb.ErrRoot)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: devpg -- COMMAND [ARG…]  (runs COMMAND with TEST_DATABASE_URL set to a throwaway PostgreSQL)")
		os.Exit(2)
	}
	os.Exit(run(args, os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	// Interrupts go to the command (same process group); devpg waits for it
	// and then stops PostgreSQL.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	url, stop, err := start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "devpg: %v\n", err)
		return 1
	}
	defer stop()
	fmt.Fprintln(stderr, "devpg: TEST_DATABASE_URL is not set: the tests use a throwaway embedded PostgreSQL")

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	cmd.Env = append(os.Environ(), "TEST_DATABASE_URL="+url)
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintf(stderr, "devpg: %v\n", err)
		return 1
	}
}

// start runs PostgreSQL in a new temporary directory on a free port, with a
// database named test; stop shuts it down and removes the directory.
// Downloaded binaries (when none are installed) are kept in the user's cache
// directory, so they are downloaded once per machine.
func start(ctx context.Context) (url string, stop func(), err error) {
	// devdb checks too; checked here before a temporary directory is made.
	if os.Geteuid() == 0 {
		return "", nil, errRoot
	}
	dir, err := os.MkdirTemp("", "webhookd-devpg-")
	if err != nil {
		return "", nil, err
	}
	opts := devdb.Options{Dir: dir, Database: "test", CacheDir: filepath.Join(dir, "cache")}
	if userCache, err := os.UserCacheDir(); err == nil {
		opts.CacheDir = filepath.Join(userCache, "webhookd", "postgres")
	}
	var s *devdb.Server
	// A free port can be taken between the probe and PostgreSQL binding it.
	for attempt := 0; ; attempt++ {
		if opts.Port, err = freePort(); err != nil {
			break
		}
		s, err = devdb.Start(ctx, opts)
		if err == nil || !errors.Is(err, devdb.ErrPortInUse) || attempt == 2 {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return s.URL(), func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "devpg: %v\n", err)
		}
		_ = os.RemoveAll(dir)
	}, nil
}

func freePort() (uint32, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port), nil
}
