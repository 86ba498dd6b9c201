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
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("devdb: open lock file: %w", err)
	}
	return f, nil
}

// stopOrphan does nothing: a server left running makes the port check fail instead.
func stopOrphan(context.Context, string) error { return nil }
