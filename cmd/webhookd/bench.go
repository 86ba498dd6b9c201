package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/webhookd/webhookd/internal/loadgen"
)

// benchDefaultURL is the local test database `make test` uses, the bench's
// server when neither DATABASE_URL nor TEST_DATABASE_URL is set.
const benchDefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BenchCmd measures webhookd end to end against the database's own limit:
// it runs `webhookd serve` (this binary) as a child process on a fresh
// schema, sends realistic signed Clerk events over HTTP, and compares the
// throughput with single-row inserts of the same payloads straight into
// PostgreSQL. It fails when an accepted event never reached the users
// table or the table differs from in-order delivery: a fast but wrong run
// proves nothing.
type BenchCmd struct {
	Database
	Events      int      `name:"events" short:"n" default:"20000" help:"How many unique events to send."`
	Concurrency int      `name:"concurrency" short:"c" help:"Requests (and ceiling inserts) in flight at once. Defaults to 8, 64 with --backlog."`
	Backlog     int      `name:"backlog" placeholder:"N" help:"Measure the drain of a backlog instead of a steady load: N deliveries pending at once, as Svix sends them after an outage, at --concurrency with Svix's retries of every non-2xx, then a trickle of one event every 10 ms for 3 s; -n is ignored."`
	Users       int      `name:"users" short:"u" default:"2000" help:"User population the created/updated/deleted events are spread over."`
	Out         string   `name:"out" default:"bench-results/bench.json" help:"Where to write the results as JSON."`
	Keep        bool     `name:"keep" help:"Keep the bench schema afterwards."`
	ChildLog    string   `name:"child-log" placeholder:"FILE" help:"Write the webhookd child's logs to this file (default: discarded)."`
	Summarize   []string `name:"summarize" placeholder:"FILE" help:"Run nothing: print the results of earlier runs (their --out files, comma-separated) as one Markdown table, one row per run (make bench-table)."`
	Profile     string   `name:"profile" placeholder:"DIR" help:"Write webhookd's CPU and allocation profiles (cpu.pprof, allocs.pprof: go tool pprof) and PostgreSQL's top statements during the load (pg_stat_statements.txt, when the extension is installed) into DIR."`
}

// Run runs the benchmark and prints the results. The server is
// DATABASE_URL, else (unless --dev) TEST_DATABASE_URL, else the local test
// database; a schema bench_<time> is created there and dropped.
func (c *BenchCmd) Run(ctx context.Context, g *Globals) error {
	if len(c.Summarize) > 0 {
		return summarize(g.stdout(), c.Summarize)
	}
	if c.Events < 1 || c.Concurrency < 0 || c.Users < 1 || c.Backlog < 0 {
		return fmt.Errorf("--events, --concurrency and --users must be 1 or more, --backlog 0 or more")
	}
	dbURL := c.URL
	if dev, _, err := c.devMode(false); err != nil {
		return err
	} else if dev {
		logger, err := g.Logger()
		if err != nil {
			return err
		}
		conn, err := c.open(ctx, "bench", g.stderr(), logger)
		if err != nil {
			return err
		}
		defer conn.Close()
		dbURL = conn.URL
	}
	if dbURL == "" {
		dbURL = os.Getenv("TEST_DATABASE_URL")
	}
	if dbURL == "" {
		dbURL = benchDefaultURL
	}
	cfg := loadgen.BenchConfig{
		DatabaseURL: dbURL, Events: c.Events, Concurrency: c.Concurrency, Users: c.Users, Backlog: c.Backlog,
		Keep: c.Keep, Log: os.Stderr, ProfileDir: c.Profile,
		// The child logs one line per request; at warn it spends its CPU
		// on the requests, as a production deployment at info would not
		// have to share two cores with the load generator.
		ChildEnv: []string{"LOG_FORMAT=json", "LOG_LEVEL=warn"},
	}
	if c.ChildLog != "" {
		f, err := os.Create(c.ChildLog)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.ChildOutput = f
	}
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	printReport(g.stdout(), rep)
	if err := os.MkdirAll(filepath.Dir(c.Out), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.Out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "results written to %s\n", c.Out)
	if err := rep.Verify(); err != nil {
		hint := ""
		if !c.Keep {
			hint = " (run with --keep to inspect the schema)"
		}
		return fmt.Errorf("bench run is not valid: %w%s", err, hint)
	}
	return nil
}

func printReport(out io.Writer, r loadgen.Report) {
	fmt.Fprintf(out, "webhookd bench: %d events (%d B mean body) over %d users, concurrency %d, %d CPUs, PostgreSQL %s\n\n",
		r.Events, r.BodyBytes, r.Users, r.Concurrency, r.CPUs, r.Postgres)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tevents/s\tp50 ms\tp90 ms\tp99 ms\tmax ms")
	row := func(name string, t loadgen.Throughput) {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\n", name, t.EventsPerSec, t.Latency.P50, t.Latency.P90, t.Latency.P99, t.Latency.Max)
	}
	row("webhookd (HTTP → ledger, 2xx after commit)", r.Webhookd)
	row("database ceiling (1-row INSERT per tx)", r.Ceiling)
	_ = tw.Flush()
	fmt.Fprintf(out, "\nratio to ceiling   %.2f×\n", r.Ratio)
	fmt.Fprintf(out, "non-2xx answers    %d %v, connection errors %d\n", r.Non2xx, r.Statuses, r.ConnErrors)
	fmt.Fprintf(out, "projection lag     p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events, %g ms resolution; %d never visible)\n", r.Lag.P50, r.Lag.P99, r.Lag.Max, r.LagEvents, r.LagResolutionMs, r.NotVisible)
	fmt.Fprintf(out, "users check        %d of %d users differ from in-order delivery\n", r.UsersMismatched, r.UsersChecked)
	fmt.Fprintf(out, "group commit       %.1f appends per INSERT (%d INSERTs)\n", r.AppendsPerInsert, r.LedgerInserts)
	fmt.Fprintf(out, "CPU per event      generator %.0f µs + webhookd %.0f µs + PostgreSQL %.0f µs = %.0f µs (ceiling: %.0f + %.0f = %.0f µs per insert)\n",
		r.CPU.Generator, r.CPU.Webhookd, r.CPU.Postgres, r.CPU.Total,
		r.CeilingCPU.Generator, r.CeilingCPU.Postgres, r.CeilingCPU.Total)
	fmt.Fprintf(out, "webhookd peak RSS  %.1f MiB\n", r.PeakRSSMiB)
	if b := r.Backlog; b != nil {
		fmt.Fprintf(out, "\nbacklog of %d events at concurrency %d (Svix retries every non-2xx)\n", b.Events, b.Concurrency)
		fmt.Fprintf(out, "drained in         %.2f s: %.0f events/s, %.2f× the ceiling at the same concurrency\n", b.DrainSeconds, b.EventsPerSec, b.Ratio)
		fmt.Fprintf(out, "requests           %d (%d retries %v); latency p50 %.1f ms, p99 %.1f ms; first attempt → 2xx p50 %.1f ms, p99 %.1f ms\n",
			b.Attempts, b.Retries, b.Statuses, b.Latency.P50, b.Latency.P99, b.Delivery.P50, b.Delivery.P99)
		fmt.Fprintf(out, "lag during drain   p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", b.LagDuring.P50, b.LagDuring.P99, b.LagDuring.Max)
		fmt.Fprintf(out, "caught up          %.0f ms after the last delivery of the backlog\n", b.CaughtUpMs)
		fmt.Fprintf(out, "lag after drain    p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d events, one every %g ms)\n", b.LagAfter.P50, b.LagAfter.P99, b.LagAfter.Max, b.TrickleEvents, b.TrickleEveryMs)
	}
	if len(r.Statements) > 0 {
		fmt.Fprintf(out, "\nPostgreSQL's top statements during the load (pg_stat_statements)\n")
		loadgen.PrintStatements(out, r.Statements)
	}
}

// summarize prints the reports in files as the table of README's
// Performance section: one row per run, each against the ceiling measured
// in the same run.
func summarize(out io.Writer, files []string) error {
	fmt.Fprintln(out, "| run | webhookd | DB ceiling (1-row INSERT per tx) | ratio | p99 | projection lag p50 / p99 | appends per INSERT | CPU per event: webhookd / PostgreSQL (ceiling: client + PostgreSQL per insert) | peak RSS |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r loadgen.Report
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		run := fmt.Sprintf("c=%d, %d events", r.Concurrency, r.Events)
		lag := fmt.Sprintf("%.0f / %.0f ms", r.Lag.P50, r.Lag.P99)
		if b := r.Backlog; b != nil {
			run = fmt.Sprintf("backlog of %d at c=%d: drained in %.1f s", b.Events, b.Concurrency, b.DrainSeconds)
			lag = fmt.Sprintf("during %.0f / %.0f ms; after %.0f / %.0f ms; caught up %.0f ms after the last delivery",
				b.LagDuring.P50, b.LagDuring.P99, b.LagAfter.P50, b.LagAfter.P99, b.CaughtUpMs)
		}
		fmt.Fprintf(out, "| %s | %.0f/s | %.0f/s | %.2f× | %.1f ms | %s | %.1f | %.0f / %.0f µs (%.0f + %.0f µs) | %.1f MiB |\n",
			run, r.Webhookd.EventsPerSec, r.Ceiling.EventsPerSec, r.Ratio, r.Webhookd.Latency.P99, lag, r.AppendsPerInsert,
			r.CPU.Webhookd, r.CPU.Postgres, r.CeilingCPU.Generator, r.CeilingCPU.Postgres, r.PeakRSSMiB)
	}
	return nil
}
