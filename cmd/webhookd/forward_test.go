package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/forward"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/natstest"
	"github.com/webhookd/webhookd/internal/testdb"
)

func withForward(url, stream, prefix string) option {
	return func(c *AppConfig) {
		c.Forward = ForwardConfig{URL: url, Stream: stream, SubjectPrefix: prefix, MaxBackoff: 200 * time.Millisecond}
	}
}

// ledgerSvixIDs returns the ledger's svix-ids in ledger (safe) order.
func ledgerSvixIDs(t *testing.T, db *testdb.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT svix_id FROM ledger_events ORDER BY `+eventstore.SafeOrder)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// requireStreamIsLedger checks that the stream holds every ledger entry
// exactly once, in ledger order, each body byte for byte.
func requireStreamIsLedger(t *testing.T, db *testdb.DB, url, stream string) []natstest.Message {
	t.Helper()
	msgs := natstest.ReadStream(t, url, stream)
	want := ledgerSvixIDs(t, db)
	got := make([]string, len(msgs))
	seen := map[string]bool{}
	for i, m := range msgs {
		got[i] = m.Header.Get(jetstream.MsgIDHeader)
		require.False(t, seen[got[i]], "svix-id %s is in the stream twice", got[i])
		seen[got[i]] = true
	}
	require.Equal(t, len(want), len(got), "messages in the stream")
	require.Equal(t, want, got, "stream order is ledger order")
	bodies := map[string][]byte{}
	rows, err := db.Pool.Query(context.Background(), `SELECT svix_id, payload FROM ledger_events`)
	require.NoError(t, err)
	var (
		id   string
		body []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &body}, func() error { bodies[id] = append([]byte(nil), body...); return nil })
	require.NoError(t, err)
	for _, m := range msgs {
		require.Equal(t, bodies[m.Header.Get(jetstream.MsgIDHeader)], m.Data, "body byte for byte")
	}
	return msgs
}

// NATS stopped and started again while Clerk keeps delivering: every
// delivery is answered 200 (the ledger does not need the broker), lag and
// the connection show on /metrics and /readyz, and once NATS is back the
// forwarder catches up by itself with nothing lost or duplicated.
func TestForwarderOutlivesNATSRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.StartServer(t)
	stream := natstest.Stream(t, srv.URL())
	h := start(t, withForward(srv.URL(), stream, ""))

	h.deliverForwardN(0, 50)
	h.waitForwardLag(0)
	m := scrape(t, h)
	require.Equal(t, 1.0, m.value(fmt.Sprintf(`webhookd_forward_connected{stream=%q}`, stream)))
	require.Equal(t, 50.0, m.value(`webhookd_forward_published_total`))

	// Deliveries go on at a steady pace while NATS stops and starts; each
	// answer is kept and checked below (not in the goroutine).
	var (
		delivered atomic.Int64
		wg        sync.WaitGroup
		statuses  = make([]int, 450)
	)
	bodies, headers := make([][]byte, 450), make([]http.Header, 450)
	for i := 50; i < 450; i++ {
		bodies[i] = clerkfake.MustBuild([]string{"user.created", "user.updated", "session.created"}[i%3], clerkfake.Options{Seed: int64(i + 1), Time: h.now})
		headers[i] = signed(t, testSecret, fmt.Sprintf("msg_fwd_%05d", i), h.now, bodies[i])
	}
	wg.Go(func() {
		for i := 50; i < 450; i++ {
			req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(bodies[i]))
			if err == nil {
				req.Header = headers[i]
				if resp, err := http.DefaultClient.Do(req); err == nil {
					statuses[i] = resp.StatusCode
					resp.Body.Close()
				}
			}
			delivered.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	require.Eventually(t, func() bool { return delivered.Load() >= 50 }, time.Minute, time.Millisecond)
	srv.Stop()
	stoppedAt := delivered.Load()
	// The lag rises: entries wait in the ledger, nothing is dropped.
	require.Eventually(t, func() bool {
		m := scrape(t, h)
		return delivered.Load() >= stoppedAt+100 &&
			m.value(fmt.Sprintf(`webhookd_forward_lag_events{stream=%q}`, stream)) >= 100 &&
			m.value(fmt.Sprintf(`webhookd_forward_connected{stream=%q}`, stream)) == 0
	}, time.Minute, 20*time.Millisecond, "forward lag rises while NATS is down")
	require.Positive(t, scrape(t, h).value(`webhookd_forward_failures_total{reason="broker"}`))
	ready := h.get("/readyz")
	require.Equal(t, http.StatusOK, ready.status, "a broker that is down does not take webhookd out of service: %v", ready.body)
	fwd := ready.body["checks"].(map[string]any)["forwarder"].(map[string]any)
	require.Equal(t, false, fwd["connected"])
	require.Positive(t, fwd["events"].(float64))

	srv.Start()
	wg.Wait()
	for i := 50; i < 450; i++ {
		require.Equal(t, http.StatusOK, statuses[i], "delivery %d (NATS stopped after %d)", i, stoppedAt)
	}
	h.waitForwardLag(0)
	require.Equal(t, 450, len(requireStreamIsLedger(t, h.db, srv.URL(), stream)))
	m = scrape(t, h)
	require.Equal(t, 1.0, m.value(fmt.Sprintf(`webhookd_forward_connected{stream=%q}`, stream)))
	require.Equal(t, 450.0, m.value(`webhookd_forward_entries_total`))
}

// deliverForwardN delivers n user events numbered from first, each
// answered 200.
func (h *harness) deliverForwardN(first, n int) {
	h.t.Helper()
	for i := first; i < first+n; i++ {
		typ := []string{"user.created", "user.updated", "session.created"}[i%3]
		body := clerkfake.MustBuild(typ, clerkfake.Options{Seed: int64(i + 1), Time: h.now})
		a := h.deliver(fmt.Sprintf("msg_fwd_%05d", i), body)
		require.Equal(h.t, 200, a.status, "answer: %v", a.body)
	}
}

// waitForwardLag waits until /metrics shows a forward lag of events.
func (h *harness) waitForwardLag(events float64) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		for k, v := range scrape(h.t, h) {
			if strings.HasPrefix(k, "webhookd_forward_lag_events{") {
				return v == events
			}
		}
		return false
	}, 2*time.Minute, 20*time.Millisecond, "forward lag reaches %v", events)
}

// Bad forwarder settings stop serve at start with one line naming the
// setting, and never echo a URL's password.
func TestForwardSettingsAreChecked(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for env, want := range map[string]string{
		"WEBHOOKD_FORWARD_NATS_URL=http://user:hunter2@127.0.0.1:4222": `webhookd: WEBHOOKD_FORWARD_NATS_URL: scheme "http": must be nats, tls, ws or wss`,
		"WEBHOOKD_FORWARD_STREAM=CL.ERK":                               "webhookd: WEBHOOKD_FORWARD_STREAM: must be 1 to 255 letters, digits, '_' or '-'",
		"WEBHOOKD_FORWARD_TYPES=user.[":                                `webhookd: WEBHOOKD_FORWARD_TYPES: pattern "user.[": malformed glob (path.Match syntax: *, ?, [a-z], \ to escape)`,
		"WEBHOOKD_FORWARD_SUBJECT_PREFIX=clerk.>":                      "webhookd: WEBHOOKD_FORWARD_SUBJECT_PREFIX: must be dot-separated tokens of letters, digits, '_' or '-' (clerk, prod.clerk)",
	} {
		envs := []string{"DATABASE_URL=" + db.URL, "CLERK_WEBHOOK_SIGNING_SECRET=" + testSecret, "WEBHOOKD_ADDR=127.0.0.1:0", env}
		if !strings.HasPrefix(env, "WEBHOOKD_FORWARD_NATS_URL=") {
			envs = append(envs, "WEBHOOKD_FORWARD_NATS_URL=nats://127.0.0.1:4222")
		}
		_, stderr, code := runMain(t, t.TempDir(), envs, "serve")
		require.Equal(t, 1, code, "%s: %s", env, stderr)
		require.Equal(t, want+"\n", stderr, env)
		require.NotContains(t, stderr, "hunter2")
	}
}

// The real binary, SIGKILLed three times while it forwards a backlog (at
// whatever point of a batch the kill lands: between publish and the
// position's commit, JetStream's duplicate window absorbs the repeat),
// then left to finish: the stream holds every ledger entry exactly once,
// in ledger order.
func TestForwarderKilledThreeTimesForwardsExactlyOnce(t *testing.T) {
	t.Parallel()
	url := natstest.URL(t)
	stream := natstest.Stream(t, url)
	prefix := strings.ToLower(stream)
	db := testdb.New(t)
	// A backlog of events no read model takes (so the projections stay
	// idle), appended through the ledger's own triggers.
	bodies := make([][]byte, 8)
	for i := range bodies {
		bodies[i] = clerkfake.MustBuild("session.created", clerkfake.Options{})
	}
	const backlog = 40_000
	for first := 0; first < backlog; first += 5000 {
		ids, payloads := make([]string, 5000), make([][]byte, 5000)
		for i := range ids {
			ids[i], payloads[i] = fmt.Sprintf("msg_kill_%06d", first+i), bodies[i%len(bodies)]
		}
		_, err := db.Pool.Exec(context.Background(), `INSERT INTO ledger_events
			(uuid, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, payload, svix_timestamp, signature)
			SELECT gen_random_uuid()::text, id, 'clerk', 'session.created', 'sess_1', 'ins_1', now(), 'ms', now(), body, now(), 'v1,test'
			FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS u(id, body, n) ORDER BY n`, ids, payloads)
		require.NoError(t, err)
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	group := forward.ConsumerGroup(stream)
	run := func() (*exec.Cmd, chan error) {
		addr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
		cmd := exec.Command(exe, "serve")
		cmd.Env = []string{runMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LOG_FORMAT=json",
			"DATABASE_URL=" + db.URL, "CLERK_WEBHOOK_SIGNING_SECRET=" + testSecret,
			"WEBHOOKD_ADDR=" + addr,
			"WEBHOOKD_FORWARD_NATS_URL=" + url, "WEBHOOKD_FORWARD_STREAM=" + stream, "WEBHOOKD_FORWARD_SUBJECT_PREFIX=" + prefix}
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			done <- nil
			if t.Failed() {
				t.Logf("webhookd output:\n%s", out.String())
			}
		})
		return cmd, done
	}
	_, js := natstest.JetStream(t, url)
	inStream := func() uint64 {
		st, err := js.Stream(context.Background(), stream)
		if err != nil {
			return 0 // not created yet
		}
		info, err := st.Info(context.Background())
		require.NoError(t, err)
		return info.State.Msgs
	}
	committed := func() uint64 {
		var n uint64
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events e, ledger_offsets o
			WHERE o.consumer_group = $1 AND (e.transaction_id, e."offset") <= (o.last_processed_transaction_id, o.offset_acked)`, group).Scan(&n))
		return n
	}
	// Kill it once it moved the position, when the stream holds entries
	// the position does not cover yet: published, not committed. A kill
	// that lands after the batch committed after all does not count; three
	// must land in that window.
	inWindow := 0
	for start := 1; inWindow < 3; start++ {
		require.LessOrEqual(t, start, 12, "only %d of 11 kills landed between a publish and its commit", inWindow)
		before := committed()
		cmd, done := run()
		require.Eventually(t, func() bool {
			c := committed()
			return c > before && inStream() > c
		}, time.Minute, time.Millisecond, "start %d: the forwarder publishes", start)
		require.NoError(t, cmd.Process.Kill())
		<-done
		done <- nil
		c, n := committed(), inStream()
		require.Less(t, c, uint64(backlog), "start %d: killed after the backlog was forwarded", start)
		if n > c {
			inWindow++
		}
		t.Logf("start %d: SIGKILL with %d entries committed and %d in the stream", start, c, n)
	}
	// The next run publishes again from the committed position: what the
	// stream already holds comes back as duplicates and JetStream drops
	// them (the check below finds each entry once).
	run()
	require.Eventually(t, func() bool {
		n, _, err := eventstore.GroupLag(context.Background(), db.Pool, group)
		return err == nil && n == 0
	}, 2*time.Minute, 20*time.Millisecond, "the forwarder finishes the backlog")
	msgs := requireStreamIsLedger(t, db, url, stream)
	require.Len(t, msgs, backlog)
	require.Equal(t, prefix+".session.created", msgs[0].Subject)
}

// The forwarder's log lines (leading, broker down, reconnected, an entry
// NATS refuses) carry offsets and causes, never what the entries say:
// events full of personal data, one whose type is an email address.
func TestNoPersonalDataInForwarderLogs(t *testing.T) {
	t.Parallel()
	srv := natstest.StartServer(t)
	stream := natstest.Stream(t, srv.URL())
	logs := &syncBuffer{}
	logger, err := redact.NewLogger(logs, redact.FormatJSON, slog.LevelDebug)
	require.NoError(t, err)
	h := start(t, withForward(srv.URL(), stream, ""), withConfig(func(c *AppConfig) { c.Logger = logger }))
	pii := personal{}
	deliver := func(i int) {
		email := fmt.Sprintf("patient.%d@clinic-example.org", i)
		body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: int64(i + 1), Email: email, FirstName: "Siobhán", LastName: "Ó Súilleabháin"})
		var v any
		require.NoError(t, json.Unmarshal(body, &v))
		pii.collect(v, "")
		require.Equal(t, http.StatusOK, h.deliver(fmt.Sprintf("msg_fwdpii_%d", i), body).status)
	}
	for i := range 20 {
		deliver(i)
	}
	// A row whose type is an email address (written by hand), and one too
	// large for NATS, both full of personal data.
	nc, _ := natstest.JetStream(t, srv.URL())
	huge := `{"email_address":"` + strings.Repeat("olive.oyl@clinic-example.org ", int(nc.MaxPayload())/29+1) + `"}`
	_, err = h.db.Pool.Exec(context.Background(), `INSERT INTO ledger_events
		(uuid, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, payload)
		VALUES (gen_random_uuid()::text, 'whd_pii_type', 'webhookd', 'bertha.vanation@clinic-example.org', 'user_1', 'ins_1', now(), 'ms', now(), '{"name":"Bertha Vanation"}'),
		       (gen_random_uuid()::text, 'whd_pii_huge', 'webhookd', 'user.updated', 'user_1', 'ins_1', now(), 'ms', now(), $1::text::bytea)`, huge)
	require.NoError(t, err)
	pii.add("bertha.vanation@clinic-example.org", "Bertha Vanation", "olive.oyl@clinic-example.org", "Siobhán", "Ó Súilleabháin")
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `"msg":"forwarder_broker_unavailable"`)
	}, time.Minute, 20*time.Millisecond, "the refused entry is logged")

	srv.Stop()
	for i := 20; i < 30; i++ {
		deliver(i)
	}
	srv.Start()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"msg":"forwarder_reconnected"`) }, time.Minute, 20*time.Millisecond)

	out := logs.String()
	for _, line := range []string{"forwarder_leading", "forwarder_stream_created", "forwarder_disconnected"} {
		require.Contains(t, out, `"msg":"`+line+`"`)
	}
	require.Greater(t, len(pii), 40)
	for s := range pii {
		require.NotContains(t, out, s, "personal data in the logs")
	}
}
