package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Not parallel: it changes the process's GC settings and environment.
func TestTuneGCUnlessTheEnvironmentDecides(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	unset := func(name string) {
		if v, ok := os.LookupEnv(name); ok {
			require.NoError(t, os.Unsetenv(name))
			t.Cleanup(func() { os.Setenv(name, v) })
		}
	}
	unset("GOGC")
	unset("GOMEMLIMIT")

	tuneGC()
	require.Equal(t, servingGCPercent, debug.SetGCPercent(100))
	require.EqualValues(t, servingSoftMemMiB<<20, debug.SetMemoryLimit(math.MaxInt64))

	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	tuneGC()
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC set: left alone")
	require.EqualValues(t, int64(math.MaxInt64), debug.SetMemoryLimit(math.MaxInt64), "GOMEMLIMIT set: left alone")
}
