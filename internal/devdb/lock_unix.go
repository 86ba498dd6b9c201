//go:build unix

package devdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on dir/lock, held until the returned file is closed
// (or the process dies), and writes the holder's pid and port into it (see readLock).
// Go opens files close-on-exec, so the postgres processes the library starts do not
// inherit it. flock locks belong to the open file, so a second Start in the same
// process conflicts too.
func lockDir(dir string, port uint32) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devdb: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _, _ := readLock(dir)
			return nil, &DirInUseError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("devdb: lock %s: %w", path, err)
	}
	// For the error above, for Open to join the server, and for humans; the flock is
	// what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n%d\n", os.Getpid(), port)), 0)
	}
	return f, nil
}

// stopOrphan shuts down a PostgreSQL still running on dataDir. The caller holds the
// Dir lock, so such a server was left behind by a process that exited without Stop
// (pg_ctl detaches the server, so it outlives its parent).
func stopOrphan(ctx context.Context, dataDir string) error {
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("devdb: read %s: %w", pidFile, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil // half-written; PostgreSQL replaces it
	}

	switch err := syscall.Kill(pid, 0); {
	case errors.Is(err, syscall.ESRCH):
		return nil // stale after a crash; PostgreSQL replaces it
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("devdb: %s names pid %d, a process of another user: stop it, or use another directory", pidFile, pid)
	case err != nil:
		return fmt.Errorf("devdb: check pid %d from %s: %w", pid, pidFile, err)
	}

	ours, err := isPostmasterOf(pid, dataDir)
	if err != nil {
		return fmt.Errorf("devdb: PostgreSQL (pid %d) may still be running on %s and devdb cannot check it (%v): stop it with kill -INT %d", pid, dataDir, err, pid)
	}
	if !ours {
		// The pid was reused after a crash; PostgreSQL would take it for a live server.
		if err := os.Remove(pidFile); err != nil {
			return fmt.Errorf("devdb: remove stale %s: %w", pidFile, err)
		}
		return nil
	}

	// SIGINT is PostgreSQL's fast shutdown: roll back open transactions, checkpoint, exit.
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("devdb: stop PostgreSQL (pid %d) left running on %s: %w", pid, dataDir, err)
	}
	// Wait for the pid file rather than the process: an orphan re-parented to a pid 1
	// that does not reap (common in containers) stays a zombie.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devdb: PostgreSQL (pid %d) left running on %s did not stop: %w", pid, dataDir, ctx.Err())
		case <-tick.C:
		}
	}
}

// isPostmasterOf tells whether pid runs postgres on dataDir, from its command line
// (the postmaster keeps "postgres -D dataDir ...").
func isPostmasterOf(pid int, dataDir string) (bool, error) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		// No procfs (macOS, BSD): ask ps.
		cmdline, err = exec.Command("ps", "-o", "command=", "-p", strconv.Itoa(pid)).Output()
		if err != nil {
			return false, err
		}
	}
	args := strings.Fields(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	if len(args) == 0 || filepath.Base(args[0]) != "postgres" {
		return false, nil
	}
	return bytes.Contains(cmdline, []byte(dataDir)), nil
}
