package admin_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/admin"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var updatedAtPattern = regexp.MustCompile(`"updated_at":\d+`)

const heavyUser = "user_bench_heavy"

// loadLedger COPYs events realistic user.updated bodies (about 1.5 KB)
// into the ledger over subjects users, one in every events/heavy of them
// about heavyUser, interleaved (so a page of that user's timeline reads
// rows spread over the table, the worst case); indexes every entry
// (ledger_index) and writes one checkpoint covering them all. The users
// read model gets one row per user, names and emails drawn from lists.
func loadLedger(b *testing.B, db *testdb.DB, events, subjects, heavy int) {
	b.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const templates = 1000
	bodies := make([][]byte, templates)
	for i := range bodies {
		bodies[i] = clerkfake.MustBuild(domain.EventUserUpdated, clerkfake.Options{ID: "user_placeholder_0000000", Seed: int64(i + 1), Time: t0})
	}
	every := events / heavy
	now := time.Now()
	const chunk = 50_000
	for start := 0; start < events; start += chunk {
		i, end := start, min(start+chunk, events)
		_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"ledger_events"},
			[]string{"uuid", "svix_id", "source", "svix_timestamp", "signature", "event_type", "subject_id", "instance_id",
				"event_time", "timestamp_unit", "received_at", "payload"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i >= end {
					return nil, nil
				}
				id := fmt.Sprintf("user_bench%07d", i%subjects)
				if i%every == every/2 {
					id = heavyUser
				}
				at := t0.Add(time.Duration(i) * time.Second)
				body := bytes.Replace(bodies[i%templates], []byte("user_placeholder_0000000"), []byte(id), 1)
				body = updatedAtPattern.ReplaceAll(body, fmt.Appendf(nil, `"updated_at":%d`, at.UnixMilli()))
				i++
				return []any{uuid.NewString(), fmt.Sprintf("msg_bench%09d", i), "clerk", now, "v1,bench", domain.EventUserUpdated, id, "ins_bench",
					at, "ms", at, body}, nil
			}))
		require.NoError(b, err)
	}
	for _, q := range []string{
		// The sealer's gapless-index trigger checks one row at a time;
		// the fixture sets it aside for the bulk insert.
		`ALTER TABLE ledger_index DISABLE TRIGGER ledger_index_gapless`,
		`INSERT INTO ledger_index (ledger_index, ledger_offset, leaf_hash)
		 SELECT row_number() OVER (ORDER BY "offset") - 1, "offset", sha256(payload) FROM ledger_events`,
		`ALTER TABLE ledger_index ENABLE TRIGGER ledger_index_gapless`,
		`INSERT INTO ledger_checkpoints (tree_size, root_hash, signed_at, key_id, public_key, signature)
		 SELECT count(*), sha256('root'), now(), 'bench', sha256('key'), sha256('a') || sha256('b') FROM ledger_index`,
		`INSERT INTO users (clerk_id, email, first_name, last_name, name, role, created_at, updated_at, last_offset)
		 SELECT id, lower(f) || '.' || lower(l) || '+' || n || '@clinic-example.org', f, l, f || ' ' || l, 'USER', now(), now(), n
		 FROM (SELECT n, CASE WHEN n = -1 THEN '` + heavyUser + `' ELSE 'user_bench' || lpad(n::text, 7, '0') END AS id,
		              (ARRAY['Ana','Ben','Chloé','Dmitri','Eun-ji','Farah','Gustavo','Hana','Ivan','Jo','Kwame','Lena','Mateo','Nia','Omar','Priya','Quinn','Rosa','Sven','Tariq'])[1 + n % 20] AS f,
		              (ARRAY['Smith','Nguyen','Garcia','Okafor','Müller','Rossi','Kowalski','Haddad','Tanaka','Silva','Dubois','Jensen','Costa','Novak','Ibrahim','Walsh','Kim','Lopez','Berg','Ali','Katz','Moreau','Patel','Reyes'])[1 + (n / 20) % 24] AS l
		       FROM generate_series(-1, $1 - 1) AS n) s`,
		`ANALYZE`,
	} {
		var err error
		if strings.Contains(q, "$1") {
			_, err = db.Pool.Exec(ctx, q, subjects)
		} else {
			_, err = db.Pool.Exec(ctx, q)
		}
		require.NoError(b, err, q)
	}
}

// benchServer is the admin API on the loaded database, with a real
// event store recording each read, and an admin token.
func benchServer(b *testing.B, db *testdb.DB) (*httptest.Server, string) {
	b.Helper()
	store, err := eventstore.New(db.Pool, nil)
	require.NoError(b, err)
	b.Cleanup(func() { store.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	rec := &admin.Recorder{Ledger: store, Key: key}
	token, err := (&admin.Tokens{Pool: db.Pool, Recorder: rec}).Create(context.Background(), "bench", domain.RoleAdmin, "bench")
	require.NoError(b, err)
	srv := httptest.NewServer(admin.New(admin.Config{Pool: db.Pool, Recorder: rec, Logger: slog.New(slog.DiscardHandler)}))
	b.Cleanup(srv.Close)
	return srv, token
}

// BenchmarkAdminOnLargeLedger times the admin API's user search and a
// heavy user's timeline on a synthetic ledger of WEBHOOKD_BENCH_EVENTS
// entries (default 1,000,000) over WEBHOOKD_BENCH_USERS users (default
// 100,000), one user having WEBHOOKD_BENCH_HEAVY of them (default
// 10,000). Each operation is one HTTP request through the real handler,
// bearer token checked and the read recorded in the ledger (an append and
// its commit) before the answer; p50 and p99 of the operations are
// reported.
//
//	make bench-admin
func BenchmarkAdminOnLargeLedger(b *testing.B) {
	events := envInt("WEBHOOKD_BENCH_EVENTS", 1_000_000)
	subjects := envInt("WEBHOOKD_BENCH_USERS", 100_000)
	heavy := envInt("WEBHOOKD_BENCH_HEAVY", 10_000)
	db := testdb.New(b)
	start := time.Now()
	loadLedger(b, db, events, subjects, heavy)
	var size string
	require.NoError(b, db.Pool.QueryRow(context.Background(), `SELECT pg_size_pretty(pg_total_relation_size('ledger_events'))`).Scan(&size))
	b.Logf("loaded %d entries (%s), %d users, %d about %s, in %s", events, size, subjects+1, heavy, heavyUser, time.Since(start).Round(time.Second))
	srv, token := benchServer(b, db)

	var middle int64
	require.NoError(b, db.Pool.QueryRow(context.Background(),
		`SELECT "offset" FROM ledger_events WHERE subject_id = $1 ORDER BY "offset" OFFSET $2 LIMIT 1`, heavyUser, heavy/2).Scan(&middle))
	searches := []string{
		"q=priya.patel",       // an email's start: many users share it
		"q=Katz",              // a last name: thousands match, 20 returned
		"q=user_bench0054321", // a Clerk id
		"q=nobody-by-that-name",
	}
	cases := []struct {
		name  string
		paths []string
	}{
		{"search", func() []string {
			var p []string
			for _, q := range searches {
				p = append(p, "/api/users?"+q)
			}
			return p
		}()},
		{"open", []string{"/api/users/" + heavyUser}},
		{"timeline-first-100", []string{"/api/users/" + heavyUser + "/timeline"}},
		{"timeline-middle-100", []string{fmt.Sprintf("/api/users/%s/timeline?after=%d", heavyUser, middle)}},
		{"timeline-first-1000", []string{"/api/users/" + heavyUser + "/timeline?limit=1000"}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				req, _ := http.NewRequest("GET", srv.URL+c.paths[i%len(c.paths)], nil)
				req.Header.Set("Authorization", "Bearer "+token)
				t := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took = append(took, time.Since(t))
				if resp.StatusCode != 200 {
					b.Fatalf("%s: status %d", c.paths[i%len(c.paths)], resp.StatusCode)
				}
			}
			slices.Sort(took)
			b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
			b.ReportMetric(ms(took[min(len(took)-1, len(took)*99/100)]), "p99-ms")
			b.ReportMetric(ms(took[len(took)-1]), "max-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
