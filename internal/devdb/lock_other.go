//go:build !unix

package devdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only opens dir/lock: without flock there is no protection against a second
// Start on the same Dir.
// It writes the pid and port as lockDir on Unix does.
func lockDir(dir string, port uint32) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devdb: open lock file: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n%d\n", os.Getpid(), port)), 0)
	}
	return f, nil
}

// stopOrphan does nothing: a server left running makes the port check fail instead.
func stopOrphan(context.Context, string) error { return nil }
