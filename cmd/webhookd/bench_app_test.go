package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/webhookd/webhookd/internal/testdb"
)

// benchApp runs the real webhookd on a fresh schema for a benchmark, with
// logs discarded; it stops when b ends.
func benchApp(b *testing.B) (*App, *testdb.DB) {
	b.Helper()
	db := testdb.New(b)
	ctx, cancel := context.WithCancel(context.Background())
	app, err := NewApp(ctx, AppConfig{
		DatabaseURL: db.URL, SigningSecret: testSecret, Addr: "127.0.0.1:0",
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return app, db
}

// reportLatencies reports the p50 and p99 of latencies (p50-ms, p99-ms)
// and returns them in milliseconds.
func reportLatencies(b *testing.B, latencies []time.Duration) (p50, p99 float64) {
	b.Helper()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	p50, p99 = pct(0.50), pct(0.99)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	return p50, p99
}
