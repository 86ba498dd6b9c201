package forward_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/forward"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/natstest"
	"github.com/webhookd/webhookd/internal/testdb"
)

// row is a ledger entry as a test appends it and expects it in the stream.
type row struct {
	svixID, eventType, source string
	payload                   []byte
}

// clerkTypes are the event types the tests append, webhookd's own included.
var clerkTypes = []string{"user.created", "user.updated", "user.deleted", "organization.created",
	"organizationMembership.created", "session.created", "webhookd.user.access_changed"}

// makeRows builds n entries cycling through types, with realistic bodies
// (a few distinct bodies, reused: building 10,000 would cost seconds).
func makeRows(t testing.TB, prefix string, n int, types []string) []row {
	t.Helper()
	bodies := map[string][][]byte{}
	for _, typ := range types {
		build := typ
		if typ == "webhookd.user.access_changed" {
			build = "user.updated" // a Clerk-shaped envelope, as webhookd's own are
		}
		for range 4 {
			bodies[typ] = append(bodies[typ], clerkfake.MustBuild(build, clerkfake.Options{}))
		}
	}
	out := make([]row, n)
	for i := range out {
		typ := types[i%len(types)]
		source := "clerk"
		if typ == "webhookd.user.access_changed" {
			source = "webhookd"
		}
		out[i] = row{svixID: fmt.Sprintf("%s_%08d", prefix, i), eventType: typ, source: source, payload: bodies[typ][i%4]}
	}
	return out
}

// appendRows appends rows in transactions of up to chunk rows, through
// the ledger's own triggers (which assign transaction ids and offsets).
func appendRows(t testing.TB, db *testdb.DB, rows []row, chunk int) {
	t.Helper()
	ctx := context.Background()
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		ids, types, sources, payloads := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
		for i, r := range rows[:n] {
			ids[i], types[i], sources[i], payloads[i] = r.svixID, r.eventType, r.source, r.payload
		}
		_, err := db.Pool.Exec(ctx, `INSERT INTO ledger_events
			(uuid, svix_id, source, event_type, subject_id, instance_id, event_time, timestamp_unit, received_at, payload, svix_timestamp, signature)
			SELECT gen_random_uuid()::text, id, src, typ, 'user_1', 'ins_1', now(), 'ms', clock_timestamp(), body,
			       CASE WHEN src = 'clerk' THEN now() END, CASE WHEN src = 'clerk' THEN 'v1,test' END
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS u(id, typ, src, body, n) ORDER BY n`,
			ids, types, sources, payloads)
		require.NoError(t, err)
		rows = rows[n:]
	}
}

// ledgerOrder returns the ledger's svix-ids in safe order.
func ledgerOrder(t *testing.T, db *testdb.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT svix_id FROM ledger_events ORDER BY `+eventstore.SafeOrder)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

type harness struct {
	t      testing.TB
	db     *testdb.DB
	url    string
	stream string
	prefix string // the test's own subjects: streams on one server may not share subjects
	store  *eventstore.Store
}

func setup(t testing.TB) *harness {
	t.Helper()
	url := natstest.URL(t)
	db := testdb.New(t)
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	stream := natstest.Stream(t, url)
	return &harness{t: t, db: db, url: url, stream: stream, prefix: strings.ToLower(stream), store: store}
}

// start runs a forwarder until the test ends.
func (h *harness) start(opts ...func(*forward.Config)) *forward.Forwarder {
	h.t.Helper()
	cfg := forward.Config{
		URL:           h.url,
		Stream:        h.stream,
		SubjectPrefix: h.prefix,
		Pool:          h.db.Pool,
		NewLock: func(ctx context.Context) (forward.LeaderLock, error) {
			return h.store.NewLeaderLock(ctx, "forwarder "+forward.ConsumerGroup(h.stream))
		},
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	f, err := forward.New(cfg)
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done; f.Close() })
	return f
}

// waitCaughtUp waits until f's lag is 0 events.
func waitCaughtUp(t *testing.T, f *forward.Forwarder, within time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool {
		lag, err := f.MeasureLag(context.Background(), time.Now())
		return err == nil && lag.Events == 0
	}, within, 20*time.Millisecond, "the forwarder catches up with the ledger")
}

// stored is a message as the stream holds it.
type stored struct {
	seq     uint64
	subject string
	msgID   string
	header  map[string]string
	data    []byte
}

// readStream reads every message of the stream in stream order.
func readStream(t *testing.T, url, stream string) []stored {
	t.Helper()
	var out []stored
	for _, m := range natstest.ReadStream(t, url, stream) {
		hdr := map[string]string{}
		for k := range m.Header {
			hdr[k] = m.Header.Get(k)
		}
		out = append(out, stored{seq: m.Seq, subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), header: hdr, data: m.Data})
	}
	return out
}

// requireExactlyOnce checks that the stream holds each wanted entry once,
// in ledger order, with its body and headers.
func requireExactlyOnce(t *testing.T, prefix string, msgs []stored, want []row, ledger []string) {
	t.Helper()
	byID := map[string]row{}
	for _, r := range want {
		byID[r.svixID] = r
	}
	var order []string
	for _, id := range ledger {
		if _, ok := byID[id]; ok {
			order = append(order, id)
		}
	}
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = m.msgID
	}
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		require.Equal(t, 1, n, "svix-id %s is in the stream %d times", id, n)
	}
	require.Equal(t, len(order), len(got), "messages in the stream")
	require.Equal(t, order, got, "stream order is ledger order")
	for _, m := range msgs {
		r := byID[m.msgID]
		require.Equal(t, forward.Subject(prefix, r.eventType), m.subject)
		require.Equal(t, r.payload, m.data, "body byte for byte")
		require.Equal(t, r.svixID, m.header[forward.HeaderSvixID])
		if m.header[forward.HeaderEventTypeQuoted] == "true" {
			typ, err := strconv.Unquote(m.header[forward.HeaderEventType])
			require.NoError(t, err)
			require.Equal(t, r.eventType, typ)
			require.Regexp(t, `[\x00-\x1f\x7f]|^\s|\s$`, r.eventType, "only a type a header cannot carry is quoted")
		} else {
			require.Equal(t, r.eventType, m.header[forward.HeaderEventType])
		}
		require.Equal(t, r.source, m.header[forward.HeaderSource])
		_, err := strconv.ParseInt(m.header[forward.HeaderOffset], 10, 64)
		require.NoError(t, err)
		_, err = time.Parse(time.RFC3339Nano, m.header[forward.HeaderReceivedAt])
		require.NoError(t, err)
	}
}

// 10,000 entries, half in the ledger before the forwarder starts and half
// appended while it runs (in transactions of various sizes): the stream
// holds each exactly once, in ledger order (so in ledger order per
// subject too), with its body and facts.
func TestForwardsEachEntryOnceInLedgerOrder(t *testing.T) {
	t.Parallel()
	h := setup(t)
	rows := makeRows(t, "msg_once", 10_000, clerkTypes)
	appendRows(t, h.db, rows[:5000], 1000)
	f := h.start()
	for i := 5000; i < len(rows); i += 700 {
		appendRows(t, h.db, rows[i:min(i+700, len(rows))], 1+i%97)
	}
	waitCaughtUp(t, f, 2*time.Minute)
	requireExactlyOnce(t, h.prefix, readStream(t, h.url, h.stream), rows, ledgerOrder(t, h.db))
}

// Two forwarders (two replicas) on one ledger and stream: one leads, and
// the stream still holds each entry once, in order.
func TestTwoReplicasForwardOnce(t *testing.T) {
	t.Parallel()
	h := setup(t)
	rows := makeRows(t, "msg_two", 3000, clerkTypes)
	appendRows(t, h.db, rows[:1000], 250)
	a := h.start(func(c *forward.Config) { c.BatchSize = 100 })
	h.start(func(c *forward.Config) { c.BatchSize = 100 })
	appendRows(t, h.db, rows[1000:], 50)
	waitCaughtUp(t, a, time.Minute)
	requireExactlyOnce(t, h.prefix, readStream(t, h.url, h.stream), rows, ledgerOrder(t, h.db))
}

// WEBHOOKD_FORWARD_TYPES: only the matching types reach the stream, and
// the position still passes the others (lag 0).
func TestTypeFilterSelectsWhatReachesTheStream(t *testing.T) {
	t.Parallel()
	h := setup(t)
	rows := makeRows(t, "msg_filter", 700, clerkTypes)
	appendRows(t, h.db, rows, 100)
	filter, err := forward.ParseTypeFilter("user.*, organization.created")
	require.NoError(t, err)
	f := h.start(func(c *forward.Config) { c.Types = filter })
	waitCaughtUp(t, f, time.Minute)
	var want []row
	for _, r := range rows {
		if r.eventType == "user.created" || r.eventType == "user.updated" || r.eventType == "user.deleted" || r.eventType == "organization.created" {
			want = append(want, r)
		}
	}
	require.Len(t, want, 400)
	requireExactlyOnce(t, h.prefix, readStream(t, h.url, h.stream), want, ledgerOrder(t, h.db))
}

// The stream the forwarder creates has the documented settings; a stream
// that exists keeps its own.
func TestCreatesStreamWithDocumentedSettings(t *testing.T) {
	t.Parallel()
	h := setup(t)
	appendRows(t, h.db, makeRows(t, "msg_settings", 1, clerkTypes), 1)
	f := h.start()
	waitCaughtUp(t, f, time.Minute)
	_, js := natstest.JetStream(t, h.url)
	s, err := js.Stream(context.Background(), h.stream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	c := info.Config
	require.Equal(t, []string{h.prefix + ".>"}, c.Subjects)
	require.Equal(t, jetstream.FileStorage, c.Storage)
	require.Equal(t, jetstream.LimitsPolicy, c.Retention)
	require.Equal(t, jetstream.DiscardOld, c.Discard)
	require.Equal(t, 10*time.Minute, c.Duplicates)
	require.Equal(t, time.Duration(0), c.MaxAge)
	require.Equal(t, int64(-1), c.MaxMsgs)
	require.Equal(t, int64(-1), c.MaxBytes)
	require.Equal(t, 1, c.Replicas)
	require.True(t, c.DenyDelete)
	require.True(t, c.DenyPurge)
	require.Equal(t, uint64(1), info.State.Msgs)
}

// Every ledger entry reaches the stream however odd its event type (rows
// written by hand, before types were checked): each on a valid subject of
// its own, none on a wildcard.
func TestHostileEventTypesReachTheStream(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var rows []row
	for i, typ := range hostileTypes {
		if strings.ContainsRune(typ, 0) || !utf8.ValidString(typ) {
			continue // PostgreSQL's text cannot hold it
		}
		rows = append(rows, row{svixID: fmt.Sprintf("msg_hostile_%03d", i), eventType: typ, source: "clerk", payload: []byte(`{"i":` + strconv.Itoa(i) + `}`)})
	}
	appendRows(t, h.db, rows, 5)
	f := h.start()
	waitCaughtUp(t, f, time.Minute)
	requireExactlyOnce(t, h.prefix, readStream(t, h.url, h.stream), rows, ledgerOrder(t, h.db))
}

// A broker that is down (here: a URL where no server listens) does not
// stop the forwarder: it waits, counts the failures, and once the position
// can move it has skipped nothing. Lag shows the backlog meanwhile.
func TestNoBrokerWaitsAndCountsFailures(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	appendRows(t, db, makeRows(t, "msg_nobroker", 10, clerkTypes), 10)
	var failures atomic.Int64
	f, err := forward.New(forward.Config{
		URL: "nats://127.0.0.1:1", Stream: "NOBROKER", Pool: db.Pool,
		NewLock: func(ctx context.Context) (forward.LeaderLock, error) {
			return store.NewLeaderLock(ctx, "forwarder")
		},
		Logger: slog.New(slog.DiscardHandler), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Failed: func(reason string) {
			if reason == forward.ReasonBroker {
				failures.Add(1)
			}
		},
	})
	require.NoError(t, err, "a broker that is down is not a configuration error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; f.Close() })
	require.Eventually(t, func() bool { return failures.Load() >= 3 }, 30*time.Second, 10*time.Millisecond)
	lag, err := f.MeasureLag(context.Background(), time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(10), lag.Events)
	require.False(t, lag.Connected)
}

// An entry NATS refuses (a body over the server's max_payload, 1 MB by
// default, which a 1 MiB delivery plus headers can pass) is never
// skipped: the forwarder publishes what comes before it, then waits on it,
// counting failures, and nothing after it is published out of order.
func TestRefusedEntryIsNotSkipped(t *testing.T) {
	t.Parallel()
	h := setup(t)
	rows := makeRows(t, "msg_big", 3, []string{"user.updated"})
	nc, _ := natstest.JetStream(t, h.url)
	rows[1].payload = []byte(`{"pad":"` + strings.Repeat("x", int(nc.MaxPayload())) + `"}`)
	appendRows(t, h.db, rows, 1)
	var failures atomic.Int64
	f := h.start(func(c *forward.Config) {
		c.Failed = func(reason string) {
			if reason == forward.ReasonBroker {
				failures.Add(1)
			}
		}
	})
	require.Eventually(t, func() bool { return failures.Load() >= 3 }, time.Minute, 10*time.Millisecond)
	lag, err := f.MeasureLag(context.Background(), time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(2), lag.Events, "the refused entry and the one after it wait")
	requireExactlyOnce(t, h.prefix, readStream(t, h.url, h.stream), rows[:1], ledgerOrder(t, h.db))
}
