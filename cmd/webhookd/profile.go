package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// startProfiles starts a CPU profile into dir/cpu.pprof for the life of
// `webhookd serve`; the function it returns stops it and writes the
// allocation profile (every allocation since start, sampled as Go does)
// to dir/allocs.pprof. `webhookd bench --profile` uses it to show where
// webhookd's CPU per event goes.
func startProfiles(dir string) (func(*slog.Logger), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile directory: %w", err)
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	return func(logger *slog.Logger) {
		pprof.StopCPUProfile()
		if err := cpu.Close(); err != nil {
			logger.Warn("profile_not_written", slog.String("profile", "cpu"), slog.String("cause", err.Error()))
		}
		runtime.GC()
		f, err := os.Create(filepath.Join(dir, "allocs.pprof"))
		if err == nil {
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			logger.Warn("profile_not_written", slog.String("profile", "allocs"), slog.String("cause", err.Error()))
		}
	}, nil
}
