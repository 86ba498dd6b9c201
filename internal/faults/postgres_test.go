//go:build faults

package faults

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
)

// pgCtlEnv names the command that stops and starts the test PostgreSQL.
const pgCtlEnv = "WEBHOOKD_FAULTS_PG_CTL"

// pgCtl runs the PostgreSQL control command with action (stop or start).
func pgCtl(ctl, action string) ([]byte, error) {
	return exec.Command("sh", "-c", ctl+" "+action).CombinedOutput()
}

// waitPostgres waits until the test server accepts connections.
func waitPostgres(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, testdb.ServerURL())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPostgresRestartMidLoad stops PostgreSQL while events arrive: webhookd
// answers 503 with Retry-After meanwhile, recovers by itself once
// PostgreSQL is back (the same process, no restart), and the sender's
// retries leave every event in the ledger exactly once.
func TestPostgresRestartMidLoad(t *testing.T) {
	ctl := os.Getenv(pgCtlEnv)
	if ctl == "" {
		t.Skipf("%s is not set: this drill stops and starts the test PostgreSQL, which needs a command for it, "+
			"e.g. %s=\"pg_ctlcluster --skip-systemctl-redirect 15 main\" as root (make test-faults in .ci/run sets it)", pgCtlEnv, pgCtlEnv)
	}
	d := newDrill(t)
	// Whatever happens, PostgreSQL runs again when the test ends (cleanups
	// run last-in first-out: before the schema is dropped).
	t.Cleanup(func() {
		if waitPostgres(0) == nil {
			return
		}
		if out, err := pgCtl(ctl, "start"); err != nil {
			t.Errorf("restart PostgreSQL: %v: %s", err, out)
		}
		if err := waitPostgres(time.Minute); err != nil {
			t.Errorf("PostgreSQL did not come back: %v", err)
		}
	})

	events := workload(t, 6000, 600)
	p := d.start("")
	s := d.sender(p.WebhookURL())
	wait := sendInBackground(t, s, events)

	waitDelivered(t, s, int64(len(events)/3))
	out, err := pgCtl(ctl, "stop")
	require.NoError(t, err, "stop PostgreSQL: %s", out)
	t.Logf("PostgreSQL stopped after %d accepted events", s.Stats().Delivered.Load())
	// Down until webhookd has answered 503 with Retry-After a few times
	// (the sender keeps retrying), then back.
	deadline := time.Now().Add(time.Minute)
	for s.Stats().RetryAfter503.Load() < 8 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	downFor := s.Stats().RetryAfter503.Load()
	out, err = pgCtl(ctl, "start")
	require.NoError(t, err, "start PostgreSQL: %s", out)
	require.NoError(t, waitPostgres(time.Minute))
	t.Logf("PostgreSQL started again after %d answers 503 with Retry-After", downFor)

	wait()
	require.False(t, p.Exited(), "webhookd exited: it must ride out the outage by itself")
	st := s.Stats()
	t.Logf("sender: %d accepted, %d attempts, %d connection errors, %d answered 503 (%d with Retry-After)",
		st.Delivered.Load(), st.Attempts.Load(), st.ConnErrs.Load(), st.StatusCount(503), st.RetryAfter503.Load())
	require.Positive(t, st.RetryAfter503.Load(), "no 503 with Retry-After while PostgreSQL was down")
	require.Zero(t, st.ConnErrs.Load(), "webhookd must answer (503) while PostgreSQL is down, not drop connections")

	// The test's own pool lost its connections with the server: use a new one.
	pool := testdb.Pool(t, d.db.URL)
	requireExactlyOnce(t, pool, events)
	requireUsersConverged(t, pool, events)
}
