//go:build faults

package faults

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/loadgen"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// binary is the webhookd executable built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "webhookd-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "webhookd")
	build := exec.Command("go", "build", "-o", binary, "github.com/webhookd/webhookd/cmd/webhookd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build webhookd:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// drill is one test's database, signing secret and webhookd processes.
type drill struct {
	t      *testing.T
	db     *testdb.DB
	secret string

	mu    sync.Mutex
	procs []*loadgen.Process
	logs  []*lockedWriter
}

func newDrill(t *testing.T) *drill {
	d := &drill{t: t, db: testdb.New(t), secret: clerkfake.NewSecret()}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for i, p := range d.procs {
			_ = p.Stop(20 * time.Second)
			if t.Failed() {
				t.Logf("webhookd process %d (pid %d) log:\n%s", i, p.PID(), tail(d.logs[i].String(), 40))
			}
		}
	})
	return d
}

// start runs `webhookd serve` on addr ("" for a free port) and waits until
// it is ready.
// env adds NAME=value settings, overriding the defaults.
func (d *drill) start(addr string, env ...string) *loadgen.Process {
	d.t.Helper()
	out := &lockedWriter{buf: &bytes.Buffer{}}
	p, err := loadgen.Start(loadgen.ProcessConfig{
		Binary: binary, DatabaseURL: d.db.URL, Secret: d.secret, Addr: addr,
		Env:    append([]string{"LOG_FORMAT=json", "LOG_LEVEL=warn", "WEBHOOKD_SHUTDOWN_TIMEOUT=5s"}, env...),
		Output: out,
	})
	require.NoError(d.t, err)
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.logs = append(d.logs, out)
	d.mu.Unlock()
	require.NoError(d.t, p.WaitReady(context.Background(), time.Minute), "webhookd serve start; log:\n%s", out.String())
	return p
}

// lockedWriter collects a child's output; the child's writer goroutine and
// the test read and write it concurrently.
type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// workload builds n events over users users, Clerk times in the past.
func workload(t *testing.T, n, users int) []loadgen.Event {
	events, err := loadgen.Generate(loadgen.WorkloadConfig{Events: n, Users: users, Start: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	return events
}

// sender is a Svix-like sender to urls with backoffs scaled down for a
// test: 50 ms, 100 ms, 200 ms… capped at 800 ms.
func (d *drill) sender(urls ...string) *loadgen.Sender {
	return &loadgen.Sender{Secret: d.secret, URLs: urls, Backoff: 50 * time.Millisecond, MaxBackoff: 800 * time.Millisecond}
}

// sendInBackground sends every event until accepted; the returned function
// waits for the end and fails the test on a send error.
func sendInBackground(t *testing.T, s *loadgen.Sender, events []loadgen.Event) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	done := make(chan error, 1)
	go func() { done <- s.SendAll(ctx, events, 8) }()
	return func() {
		defer cancel()
		require.NoError(t, <-done, "sender: every event must eventually be accepted")
	}
}

// waitDelivered blocks until the sender has had at least n events
// accepted.
func waitDelivered(t *testing.T, s *loadgen.Sender, n int64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for s.Stats().Delivered.Load() < n {
		require.True(t, time.Now().Before(deadline), "sender stalled at %d of %d accepted events", s.Stats().Delivered.Load(), n)
		time.Sleep(5 * time.Millisecond)
	}
}

// requireExactlyOnce checks that the ledger holds every event exactly once
// and nothing else.
func requireExactlyOnce(t *testing.T, pool *pgxpool.Pool, events []loadgen.Event) {
	t.Helper()
	ctx := context.Background()
	var total, distinct int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT svix_id) FROM ledger_events`).Scan(&total, &distinct))
	require.Equal(t, len(events), total, "ledger rows")
	require.Equal(t, len(events), distinct, "distinct svix-ids in the ledger")
	rows, err := pool.Query(ctx, `SELECT svix_id FROM ledger_events`)
	require.NoError(t, err)
	inLedger := map[string]bool{}
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		inLedger[id] = true
	}
	require.NoError(t, rows.Err())
	missing := 0
	for _, e := range events {
		if !inLedger[e.MsgID] {
			missing++
		}
	}
	require.Zero(t, missing, "events sent but not in the ledger")
}

// requireUsersConverged waits for the live users projection to reach the
// end of the ledger, checks it against a rebuild from the whole ledger
// (projections.Rebuild of users in check mode), then against the model
// in-order delivery of events gives.
func requireUsersConverged(t *testing.T, pool *pgxpool.Pool, events []loadgen.Event) {
	t.Helper()
	ctx := context.Background()
	report, err := projections.Rebuild(ctx, projections.RebuildConfig{Pool: pool, CatchUpTimeout: 2 * time.Minute}, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal, "users differs from a rebuild of the whole ledger: %v", report.Differing)
	require.EqualValues(t, len(events), report.Entries)

	want := loadgen.Expect(events)
	rows, err := pool.Query(ctx, `SELECT clerk_id, coalesce(email, ''), clerk_updated_at, deleted_at FROM users`)
	require.NoError(t, err)
	got := map[string]loadgen.UserModel{}
	for rows.Next() {
		var m loadgen.UserModel
		var updated, deleted *time.Time
		require.NoError(t, rows.Scan(&m.ClerkID, &m.Email, &updated, &deleted))
		if updated != nil {
			m.UpdatedAt = updated.UTC()
		}
		if deleted != nil {
			m.Deleted, m.DeletedAt = true, deleted.UTC()
		}
		got[m.ClerkID] = m
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, len(want), "users rows")
	var wrong []string
	for id, w := range want {
		g := got[id]
		if g.Email != w.Email || !g.UpdatedAt.Equal(w.UpdatedAt) || g.Deleted != w.Deleted || (w.Deleted && !g.DeletedAt.Equal(w.DeletedAt)) {
			wrong = append(wrong, fmt.Sprintf("%s: got %+v, want %+v", id, g, w))
		}
	}
	sort.Strings(wrong)
	if len(wrong) > 5 {
		wrong = append(wrong[:5], fmt.Sprintf("… and %d more", len(wrong)-5))
	}
	require.Empty(t, wrong, "users rows that differ from in-order delivery")
}

// TestKilledAndRestartedLosesNothing SIGKILLs webhookd five times while a
// Svix-like sender pushes 10,000 events, restarting it on the same address
// each time.
func TestKilledAndRestartedLosesNothing(t *testing.T) {
	d := newDrill(t)
	events := workload(t, 10000, 1000)
	addr, err := loadgen.FreeAddr()
	require.NoError(t, err)
	p := d.start(addr)
	s := d.sender(p.WebhookURL())
	wait := sendInBackground(t, s, events)

	const kills = 5
	for k := 1; k <= kills; k++ {
		// Kill on progress rather than on a clock, so every drill kills
		// mid-load however fast the machine is.
		waitDelivered(t, s, int64(len(events)*k/(kills+1)))
		p.Kill()
		t.Logf("kill %d: SIGKILL after %d accepted events", k, s.Stats().Delivered.Load())
		p = d.start(addr)
	}
	wait()
	st := s.Stats()
	t.Logf("sender: %d accepted, %d attempts, %d connection errors, %d answered 503", st.Delivered.Load(), st.Attempts.Load(), st.ConnErrs.Load(), st.StatusCount(503))
	require.Positive(t, st.ConnErrs.Load()+st.StatusCount(503), "the kills never made a delivery fail: the drill tested nothing")

	requireExactlyOnce(t, d.db.Pool, events)
	requireUsersConverged(t, d.db.Pool, events)
}

// TestThreeProcessesOneDatabase spreads events over three webhookd
// processes on one database.
func TestThreeProcessesOneDatabase(t *testing.T) {
	d := newDrill(t)
	events := workload(t, 6000, 600)
	sealing := serveSeals(t)
	var env []string
	if sealing {
		seed := make([]byte, ed25519.SeedSize)
		_, _ = rand.Read(seed)
		env = []string{"LOG_LEVEL=info", "WEBHOOKD_SIGNING_KEY=" + base64.StdEncoding.EncodeToString(seed), "WEBHOOKD_SEAL_INTERVAL=200ms"}
	}
	var urls []string
	for range 3 {
		urls = append(urls, d.start("", env...).WebhookURL())
	}
	s := d.sender(urls...)
	sendInBackground(t, s, events)()

	requireExactlyOnce(t, d.db.Pool, events)
	requireUsersConverged(t, d.db.Pool, events)

	if !sealing {
		t.Log("webhookd serve has no sealer (no WEBHOOKD_SIGNING_KEY in its help): the one-active-sealer check is skipped")
		return
	}
	// One active sealer: exactly one process says it leads, and it seals
	// every event once (ledger_index gives each offset one index).
	leaders := 0
	d.mu.Lock()
	for _, l := range d.logs {
		leaders += strings.Count(l.String(), `"msg":"sealer_leading"`)
	}
	d.mu.Unlock()
	require.Equal(t, 1, leaders, "processes that lead the sealing")
	deadline := time.Now().Add(time.Minute)
	for {
		var indexed int
		require.NoError(t, d.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_index`).Scan(&indexed))
		if indexed == len(events) {
			break
		}
		require.True(t, time.Now().Before(deadline), "sealed %d of %d events", indexed, len(events))
		time.Sleep(100 * time.Millisecond)
	}
}

// serveSeals reports whether the webhookd under test has a sealer (its
// serve help names WEBHOOKD_SIGNING_KEY).
func serveSeals(t *testing.T) bool {
	out, err := exec.Command(binary, "serve", "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bytes.Contains(out, []byte("WEBHOOKD_SIGNING_KEY"))
}
