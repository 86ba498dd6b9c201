package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Not parallel: a process has one CPU profile at a time.
func TestProfilesAreWrittenForTheWholeRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles")
	stop, err := startProfiles(dir)
	require.NoError(t, err)
	_, err = startProfiles(t.TempDir())
	require.Error(t, err, "a second CPU profile at once is refused, not silently dropped")
	stop(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, name := range []string{"cpu.pprof", "allocs.pprof"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err, name)
		require.Greater(t, len(b), 2, name)
		require.Equal(t, []byte{0x1f, 0x8b}, b[:2], "%s is a gzipped pprof profile", name)
	}
	_, err = startProfiles(filepath.Join(dir, "cpu.pprof", "x"))
	require.Error(t, err, "a directory that cannot be made is an error")
}
