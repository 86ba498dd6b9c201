package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// BenchConfig configures one benchmark run.
type BenchConfig struct {
	// DatabaseURL is the PostgreSQL server; the run creates a schema
	// bench_<time> on it for webhookd and the ceiling table.
	DatabaseURL string
	// Events, Concurrency and Users default to 20000, 8 (64 with
	// Backlog) and 2000.
	Events, Concurrency, Users int
	// Backlog, when above 0, makes the run a backlog drain instead of a
	// steady load (backlog.go): Backlog events pending at once, sent at
	// Concurrency with Svix's retries, then a trickle; Events is ignored.
	Backlog int
	// Keep leaves the bench schema in place afterwards.
	Keep bool
	// Binary is the webhookd executable to run as `webhookd serve`.
	// Defaults to os.Executable().
	Binary string
	// ChildEnv holds extra NAME=value settings for the child.
	ChildEnv []string
	// ChildOutput receives the child's logs. Defaults to discarding them.
	ChildOutput io.Writer
	// Log receives progress lines. Defaults to discarding them.
	Log io.Writer
	// ProfileDir, when set, is where the child writes its CPU and
	// allocation profiles (cpu.pprof, allocs.pprof) and the run writes
	// PostgreSQL's top statements during the load
	// (pg_stat_statements.txt, when the extension is installed).
	ProfileDir string
	// LagTimeout bounds the wait, after the load, for the users
	// projection to reach the ledger's last row; events it has not
	// reached by then count as not visible. Defaults to 60s.
	LagTimeout time.Duration
}

// Report is what a benchmark run measured.
type Report struct {
	Time        time.Time `json:"time"`
	Schema      string    `json:"schema"`
	Events      int       `json:"events"`
	Concurrency int       `json:"concurrency"`
	Users       int       `json:"users"`
	CPUs        int       `json:"cpus"`
	GoVersion   string    `json:"go_version"`
	Postgres    string    `json:"postgres"`
	// BodyBytes is the mean size of an event body.
	BodyBytes int `json:"mean_body_bytes"`

	Webhookd Throughput `json:"webhookd"`
	// Statuses counts answers by HTTP status; ConnErrors counts requests
	// that got no answer.
	Statuses   map[string]int `json:"statuses"`
	Non2xx     int            `json:"non_2xx"`
	ConnErrors int            `json:"connection_errors"`

	// Lag is the projection lag: 2xx to visible in users, over all
	// LagEvents accepted events, to within LagResolutionMs (the interval
	// at which the projection's position is read).
	Lag             Latency `json:"projection_lag"`
	LagEvents       int     `json:"projection_lag_events"`
	LagResolutionMs float64 `json:"projection_lag_resolution_ms"`
	// NotVisible counts accepted events not visible in users within
	// LagTimeout after the load (or missing from the ledger).
	NotVisible int `json:"not_visible"`
	// UsersChecked is how many users the check after the run compared;
	// UsersMismatched counts those whose row in users differs from what
	// in-order delivery of the ledger's events gives.
	UsersChecked    int `json:"users_checked"`
	UsersMismatched int `json:"users_mismatched"`

	Ceiling Throughput `json:"db_ceiling"`
	// Ratio is webhookd's events/s over the ceiling's.
	Ratio float64 `json:"ratio_to_ceiling"`

	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	// CPU is the CPU time per event of the load generator, webhookd (all
	// its work: HTTP, appends, the users projection) and PostgreSQL, from
	// the start of the load until the projection caught up (a backlog run:
	// until the backlog's last 2xx, per backlog event); CeilingCPU
	// the same for the ceiling's inserts. On a machine the three share,
	// these say where the time goes, and depend less than throughput on
	// what else the machine is doing.
	CPU        CPUPerEvent `json:"cpu_per_event"`
	CeilingCPU CPUPerEvent `json:"db_ceiling_cpu_per_insert"`

	// LedgerInserts is how many INSERTs the appends took and
	// AppendsPerInsert their mean size (group commit), from webhookd's
	// webhookd_ledger_batch_entries metric.
	LedgerInserts    int     `json:"ledger_inserts"`
	AppendsPerInsert float64 `json:"appends_per_insert"`

	// Backlog holds a backlog run's own figures (BenchConfig.Backlog).
	Backlog *Backlog `json:"backlog,omitempty"`

	// Statements are PostgreSQL's ten most expensive statements while
	// webhookd took the load (with --profile, when pg_stat_statements is
	// installed).
	Statements []Statement `json:"pg_statements,omitempty"`
}

func (c *BenchConfig) defaults() {
	if c.Events <= 0 {
		c.Events = 20000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
		if c.Backlog > 0 {
			c.Concurrency = 64
		}
	}
	if c.Backlog > 0 {
		c.Events = c.Backlog + trickleEvents()
	}
	if c.Users <= 0 {
		c.Users = 2000
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.LagTimeout <= 0 {
		c.LagTimeout = time.Minute
	}
}

// Verify returns an error when the run proves nothing: a fast run is
// worthless if accepted events never reached the users table or the table
// ends up wrong.
func (r Report) Verify() error {
	var problems []string
	if r.NotVisible > 0 {
		problems = append(problems, fmt.Sprintf("%d accepted events never became visible in users", r.NotVisible))
	}
	if r.UsersMismatched > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d users differ from in-order delivery", r.UsersMismatched, r.UsersChecked))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// SchemaURL returns databaseURL with search_path set to schema.
func SchemaURL(databaseURL, schema string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("the database URL must be a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Run runs the benchmark: it creates a fresh schema, starts `webhookd
// serve --migrate` on it as a child process, measures the database's
// single-row insert ceiling with the same payloads at the same
// concurrency, then sends the events to webhookd and measures throughput,
// latency, projection lag and the child's peak RSS; finally it checks the
// users table against in-order delivery (see Report.Verify).
func Run(ctx context.Context, cfg BenchConfig) (Report, error) {
	cfg.defaults()
	rep := Report{
		Time: time.Now().UTC(), Events: cfg.Events, Concurrency: cfg.Concurrency, Users: cfg.Users,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Statuses: map[string]int{},
	}
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return rep, fmt.Errorf("connect to the database: %w", err)
	}
	defer admin.Close(context.Background())
	_ = admin.QueryRow(ctx, `SHOW server_version`).Scan(&rep.Postgres)
	// PostgreSQL's CPU is that of this server's processes only: other
	// servers on a shared machine are not the run's.
	var backend int
	_ = admin.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend)
	postmaster := postmasterOf(backend)

	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	rep.Schema = fmt.Sprintf("bench_%s_%s", rep.Time.Format("20060102_150405"), hex.EncodeToString(suffix[:]))
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+rep.Schema); err != nil {
		return rep, fmt.Errorf("create schema: %w", err)
	}
	if !cfg.Keep {
		defer func() {
			dropCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, _ = admin.Exec(dropCtx, `DROP SCHEMA `+rep.Schema+` CASCADE`)
		}()
	}
	schemaURL, err := SchemaURL(cfg.DatabaseURL, rep.Schema)
	if err != nil {
		return rep, err
	}

	fmt.Fprintf(cfg.Log, "building %d events over %d users…\n", cfg.Events, cfg.Users)
	events, err := Generate(WorkloadConfig{Events: cfg.Events, Users: cfg.Users})
	if err != nil {
		return rep, err
	}
	secret := clerkfake.NewSecret()
	if err := Sign(events, secret, time.Now()); err != nil {
		return rep, err
	}
	total := 0
	for _, e := range events {
		total += len(e.Body)
	}
	rep.BodyBytes = total / len(events)

	env := cfg.ChildEnv
	if cfg.ProfileDir != "" {
		dir, err := filepath.Abs(cfg.ProfileDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return rep, err
		}
		env = append(slices.Clip(env), "WEBHOOKD_PROFILE_DIR="+dir)
	}
	child, err := Start(ProcessConfig{
		Binary: cfg.Binary, DatabaseURL: schemaURL, Secret: secret, Migrate: true,
		Env: env, Output: cfg.ChildOutput,
	})
	if err != nil {
		return rep, err
	}
	defer child.Stop(30 * time.Second) //nolint:errcheck // a second Stop after the measured one is a no-op
	if err := child.WaitReady(ctx, time.Minute); err != nil {
		return rep, err
	}
	fmt.Fprintf(cfg.Log, "webhookd serve ready on %s (pid %d), schema %s\n", child.Addr(), child.PID(), rep.Schema)
	requests, err := wireRequests(child.WebhookURL(), events)
	if err != nil {
		return rep, err
	}

	poolCfg, err := pgxpool.ParseConfig(schemaURL)
	if err != nil {
		return rep, err
	}
	poolCfg.MaxConns = int32(cfg.Concurrency)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return rep, err
	}
	defer pool.Close()
	fmt.Fprintf(cfg.Log, "database ceiling: single-row INSERT per transaction, %d connections…\n", cfg.Concurrency)
	cpuBefore, err := sampleCPU(child, postmaster)
	if err != nil {
		return rep, fmt.Errorf("CPU time: %w", err)
	}
	if rep.Ceiling, err = measureCeiling(ctx, pool, events, cfg.Concurrency); err != nil {
		return rep, err
	}
	cpuAfter, err := sampleCPU(child, postmaster)
	if err != nil {
		return rep, fmt.Errorf("CPU time: %w", err)
	}
	rep.CeilingCPU = perEvent(cpuBefore, cpuAfter, len(events))
	pool.Close()

	watchConn, err := pgx.Connect(ctx, schemaURL)
	if err != nil {
		return rep, err
	}
	defer watchConn.Close(context.Background())
	w := newPositionWatcher(watchConn, len(events))

	fmt.Fprintf(cfg.Log, "webhookd: %d events, concurrency %d…\n", cfg.Events, cfg.Concurrency)
	loadDone := make(chan struct{})
	type watchResult struct {
		reached bool
		err     error
	}
	watched := make(chan watchResult, 1)
	go func() {
		reached, err := w.run(ctx, loadDone, cfg.LagTimeout)
		watched <- watchResult{reached, err}
	}()

	statementsOn := cfg.ProfileDir != "" && resetStatements(ctx, admin)
	if cpuBefore, err = sampleCPU(child, postmaster); err != nil {
		return rep, fmt.Errorf("CPU time: %w", err)
	}
	var (
		sender       *backlogSender
		deliveries   []time.Duration
		lastDelivery time.Time
	)
	if cfg.Backlog > 0 {
		sender = &backlogSender{addr: child.Addr(), secret: secret, target: child.WebhookURL(),
			events: events, requests: requests, w: w, statuses: map[int]int{}}
		start := time.Now()
		var latencies []time.Duration
		latencies, deliveries, lastDelivery = sender.send(ctx, 0, cfg.Backlog, cfg.Concurrency)
		drain := lastDelivery.Sub(start)
		// CPU per event is the drain's: the trickle after it is mostly
		// idle time, which would blur it.
		if cpuAfter, err = sampleCPU(child, postmaster); err != nil {
			return rep, fmt.Errorf("CPU time: %w", err)
		}
		rep.CPU = perEvent(cpuBefore, cpuAfter, cfg.Backlog)
		fmt.Fprintf(cfg.Log, "backlog drained in %s; trickle of %d events, one every %s…\n", drain.Round(time.Millisecond), len(events)-cfg.Backlog, trickleEvery)
		sender.trickle(ctx, cfg.Backlog, len(events), trickleEvery)
		rep.Webhookd = Throughput{Events: cfg.Backlog, Seconds: drain.Seconds(),
			EventsPerSec: float64(cfg.Backlog) / drain.Seconds(), Latency: Summarize(latencies)}
		rep.Statuses = sender.nonOK()
		rep.ConnErrors = rep.Statuses["connection_error"]
		delete(rep.Statuses, "connection_error")
		for _, n := range rep.Statuses {
			rep.Non2xx += n
		}
		delivered := 0
		for _, at := range w.acceptedAt {
			if !at.IsZero() {
				delivered++
			}
		}
		rep.Statuses["200"] = delivered
	} else {
		statuses, connErrs, through := sendLoad(ctx, child.Addr(), requests, cfg.Concurrency, w)
		rep.Webhookd = through
		rep.ConnErrors = connErrs
		for status, n := range statuses {
			rep.Statuses[strconv.Itoa(status)] = n
			if status < 200 || status > 299 {
				rep.Non2xx += n
			}
		}
	}
	close(loadDone)
	fmt.Fprintf(cfg.Log, "waiting for the users projection to reach the end of the ledger…\n")
	res := <-watched
	if res.err != nil {
		return rep, fmt.Errorf("projection watcher: %w", res.err)
	}
	if sender == nil {
		if cpuAfter, err = sampleCPU(child, postmaster); err != nil {
			return rep, fmt.Errorf("CPU time: %w", err)
		}
		rep.CPU = perEvent(cpuBefore, cpuAfter, len(events))
	}
	if statementsOn {
		if rep.Statements, err = topStatements(ctx, admin, 10, len(events)); err != nil {
			return rep, err
		}
		if err := writeStatements(cfg.ProfileDir, rep.Statements); err != nil {
			return rep, err
		}
	}
	if !res.reached {
		fmt.Fprintf(cfg.Log, "the users projection did not reach the end of the ledger within %s\n", cfg.LagTimeout)
	}
	ledger, err := w.ledgerPositions(ctx, events)
	if err != nil {
		return rep, err
	}
	lags, notVisible := projectionLags(w.timeline, w.acceptedAt, ledger)
	rep.Lag, rep.LagEvents, rep.NotVisible = Summarize(lags), len(lags), notVisible
	rep.LagResolutionMs = ms(positionPoll)
	if sender != nil {
		b := &Backlog{Events: cfg.Backlog, Concurrency: cfg.Concurrency,
			DrainSeconds: rep.Webhookd.Seconds, EventsPerSec: rep.Webhookd.EventsPerSec,
			Latency: rep.Webhookd.Latency, Delivery: Summarize(deliveries),
			Attempts: int(sender.attempts.Load()), Retries: int(sender.retries.Load()), Statuses: sender.nonOK(),
			TrickleEvents: len(events) - cfg.Backlog, TrickleEveryMs: ms(trickleEvery)}
		during, after, caughtUp, ok := backlogLags(w.timeline, w.acceptedAt, ledger, cfg.Backlog)
		b.LagDuring, b.LagAfter = Summarize(during), Summarize(after)
		if ok {
			b.CaughtUpMs = ms(caughtUp.Sub(lastDelivery))
		}
		rep.Backlog = b
	}
	check, err := checkUsers(ctx, watchConn, events, ledger)
	if err != nil {
		return rep, err
	}
	rep.UsersChecked, rep.UsersMismatched = check.Checked, check.Mismatched
	for _, ex := range check.Examples {
		fmt.Fprintf(cfg.Log, "users mismatch: %s\n", ex)
	}

	sum, count, err := scrapeBatches(ctx, child.BaseURL()+"/metrics")
	if err != nil {
		return rep, err
	}
	if rep.LedgerInserts = int(count); count > 0 {
		rep.AppendsPerInsert = float64(int(sum/count*10+0.5)) / 10
	}
	if rep.PeakRSSBytes, err = child.PeakRSS(); err != nil {
		return rep, fmt.Errorf("peak RSS: %w", err)
	}
	rep.PeakRSSMiB = float64(rep.PeakRSSBytes*10/(1<<20)) / 10
	if rep.Ceiling.EventsPerSec > 0 {
		rep.Ratio = float64(int(rep.Webhookd.EventsPerSec/rep.Ceiling.EventsPerSec*100+0.5)) / 100
		if rep.Backlog != nil {
			rep.Backlog.Ratio = rep.Ratio
		}
	}
	if err := child.Stop(30 * time.Second); err != nil {
		return rep, fmt.Errorf("webhookd serve did not stop cleanly: %w", err)
	}
	return rep, nil
}

// sendLoad posts every pre-signed event once with concurrency workers over
// keep-alive connections and records latencies and statuses.
func sendLoad(ctx context.Context, addr string, requests [][]byte, concurrency int, w *positionWatcher) (map[int]int, int, Throughput) {
	latencies := make([]time.Duration, len(requests))
	codes := make([]int, len(requests))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := &wireConn{addr: addr}
			defer conn.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(requests) {
					return
				}
				t0 := time.Now()
				status, err := conn.do(ctx, requests[i])
				t1 := time.Now()
				latencies[i] = t1.Sub(t0)
				if err != nil {
					codes[i] = -1
					continue
				}
				codes[i] = status
				if status >= 200 && status <= 299 {
					w.accepted(i, t1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	statuses := map[int]int{}
	connErrs, accepted := 0, 0
	for _, c := range codes {
		switch {
		case c < 0:
			connErrs++
		case c >= 200 && c <= 299:
			accepted++
			statuses[c]++
		default:
			statuses[c]++
		}
	}
	// Throughput counts accepted events only: a fast 503 is no work done.
	return statuses, connErrs, Throughput{
		Events:       len(requests),
		Seconds:      elapsed.Seconds(),
		EventsPerSec: float64(accepted) / elapsed.Seconds(),
		Latency:      Summarize(latencies),
	}
}

// scrapeBatches reads webhookd_ledger_batch_entries' sum and count from a
// Prometheus text page.
func scrapeBatches(ctx context.Context, url string) (sum, count float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("scrape webhookd metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("scrape webhookd metrics: %w", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch name {
		case "webhookd_ledger_batch_entries_sum":
			sum, err = strconv.ParseFloat(value, 64)
		case "webhookd_ledger_batch_entries_count":
			count, err = strconv.ParseFloat(value, 64)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("scrape webhookd metrics: %s: %w", name, err)
		}
	}
	return sum, count, nil
}
