package eventstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/testdb"
)

func setup(t *testing.T) (*eventstore.Store, *testdb.DB) {
	t.Helper()
	db := testdb.New(t)
	s, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, db
}

func entry(svixID string) domain.LedgerEntry {
	// Whitespace and key order are odd on purpose: the ledger must keep the
	// bytes, not a re-encoding.
	body := []byte(`{ "type":"user.created",  "object":"event","data":{"id":"user_1","first_name":"Zoë"},"instance_id":"ins_1","timestamp":1654012591835}` + "\n")
	return domain.LedgerEntry{
		SvixID:        svixID,
		SvixTimestamp: time.Unix(1654012592, 0).UTC(),
		Signature:     "v1,abc=",
		Source:        domain.SourceClerk,
		EventType:     "user.created",
		SubjectID:     "user_1",
		InstanceID:    "ins_1",
		EventTime:     time.UnixMilli(1654012591835).UTC(),
		TimestampUnit: domain.UnitMilliseconds,
		ReceivedAt:    time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC),
		SourceIP:      "203.0.113.9",
		Payload:       body,
	}
}

func TestAppendKeepsBytesAndFacts(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	want := entry("msg_keep")
	res, err := s.Append(ctx, want)
	require.NoError(t, err)
	require.False(t, res.Duplicate)

	got, err := s.Get(ctx, "msg_keep")
	require.NoError(t, err)
	require.Positive(t, got.Offset)
	want.Offset = got.Offset
	require.Equal(t, want, got)
}

func TestAppendDuplicateStoresNothing(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	_, err := s.Append(ctx, entry("msg_dup"))
	require.NoError(t, err)
	again := entry("msg_dup")
	again.Payload = []byte(`{"different":"body"}`)
	res, err := s.Append(ctx, again)
	require.NoError(t, err)
	require.True(t, res.Duplicate)

	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err := s.Get(ctx, "msg_dup")
	require.NoError(t, err)
	require.Equal(t, entry("msg_dup").Payload, got.Payload, "the first delivery's body is kept")
}

func TestConcurrentAppendsOfOneIDStoreOneRow(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	const copies = 50
	var wg sync.WaitGroup
	results := make([]domain.AppendResult, copies)
	errs := make([]error, copies)
	for i := range copies {
		wg.Go(func() { results[i], errs[i] = s.Append(ctx, entry("msg_race")) })
	}
	wg.Wait()
	fresh := 0
	for i := range copies {
		require.NoError(t, errs[i])
		if !results[i].Duplicate {
			fresh++
		}
	}
	require.Equal(t, 1, fresh, "exactly one append is new")
	n, err := s.Count(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	_, err := s.Get(context.Background(), "msg_nope")
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
	require.EqualError(t, err, `not_found: no ledger entry with svix-id "msg_nope"`)
}

func TestLedgerRefusesChanges(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	_, err := s.Append(ctx, entry("msg_fixed"))
	require.NoError(t, err)

	for _, stmt := range []string{
		`UPDATE ledger_events SET payload = '\x7b7d'::bytea`,
		`DELETE FROM ledger_events`,
		// Plain TRUNCATE is refused earlier, by ledger_index's foreign key
		// (below); CASCADE reaches the trigger.
		`TRUNCATE ledger_events CASCADE`,
	} {
		_, err := db.Pool.Exec(ctx, stmt)
		require.Error(t, err, stmt)
		op := map[byte]string{'U': "UPDATE", 'D': "DELETE", 'T': "TRUNCATE"}[stmt[0]]
		require.ErrorContains(t, err, fmt.Sprintf("ledger_events is append-only: %s is not allowed (SQLSTATE 42501)", op))
	}
	_, err = db.Pool.Exec(ctx, `TRUNCATE ledger_events`)
	require.EqualError(t, err, "ERROR: cannot truncate a table referenced in a foreign key constraint (SQLSTATE 0A000)")
	got, err := s.Get(ctx, "msg_fixed")
	require.NoError(t, err)
	require.Equal(t, entry("msg_fixed").Payload, got.Payload)
}

func TestAppendWhenDatabaseIsDown(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, url := testdb.NewProxy(t, db)
	pool := testdb.Pool(t, url)
	s, err := eventstore.New(pool, nil)
	require.NoError(t, err)
	ctx := context.Background()

	proxy.Cut()
	_, err = s.Append(ctx, entry("msg_down"))
	require.Equal(t, domain.EUNAVAILABLE, domain.ErrorCode(err), "got %v", err)
	require.Equal(t, "the ledger database is unavailable; retry later", domain.ErrorMessage(err))

	proxy.Restore()
	res, err := s.Append(ctx, entry("msg_down"))
	require.NoError(t, err)
	require.False(t, res.Duplicate)
}

// TestAppendOfAValueTheDatabaseRefusesIsInvalid: a value PostgreSQL
// refuses (a data exception, or a value too large for an index row) is
// refused the same way on every retry, so the append is answered as
// invalid (a 4xx), never as an internal error Svix would retry for a day;
// nothing is stored, and valid entries appended at the same time, which
// may share its INSERT, are stored.
func TestAppendOfAValueTheDatabaseRefusesIsInvalid(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	longID := make([]byte, 4096)
	_, _ = rand.Read(longID)
	for _, tc := range []struct {
		name, sqlstate string
		change         func(*domain.LedgerEntry)
	}{
		{"event time after PostgreSQL's range", "22008", func(e *domain.LedgerEntry) { e.EventTime = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"NUL in text", "22021", func(e *domain.LedgerEntry) { e.EventType = "user.\x00created" }},
		{"invalid UTF-8 in text", "22021", func(e *domain.LedgerEntry) { e.InstanceID = "ins_\xff" }},
		{"svix-id too large for its index", "54000", func(e *domain.LedgerEntry) { e.SvixID = "msg_" + hex.EncodeToString(longID) }},
	} {
		bad := entry("msg_bad_" + tc.sqlstate + tc.name[:3])
		tc.change(&bad)
		var wg sync.WaitGroup
		goodErrs := make([]error, 8)
		for i := range goodErrs {
			wg.Go(func() {
				_, goodErrs[i] = s.Append(ctx, entry(fmt.Sprintf("msg_good_%s_%d", tc.name[:3], i)))
			})
		}
		_, err := s.Append(ctx, bad)
		wg.Wait()
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err), tc.name)
		require.Equal(t, "value_rejected", domain.ErrorReason(err), tc.name)
		require.Equal(t, "the ledger database cannot store a value of this event (SQLSTATE "+tc.sqlstate+"); retrying will not help", domain.ErrorMessage(err), tc.name)
		for i, gerr := range goodErrs {
			require.NoError(t, gerr, "%s: good entry %d", tc.name, i)
		}
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_events WHERE svix_id LIKE 'msg_good_'||$1||'%'`, tc.name[:3]).Scan(&n))
		require.Equal(t, len(goodErrs), n, tc.name)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_events WHERE svix_id NOT LIKE 'msg_good_%'`).Scan(&n))
	require.Zero(t, n, "no refused entry is stored")
}

// TestLedgerPayloadJSONReadsEveryPayload runs the README's example ledger
// query over a ledger holding payloads jsonb refuses but JSON (and Clerk's
// signature) allow: a \u0000 escape, lone surrogate escapes, bytes that are
// not UTF-8. convert_from(payload, 'UTF8')::jsonb fails the whole query;
// ledger_payload_json reads every row, with U+FFFD for what jsonb cannot
// hold, and leaves payloads it can read as they are.
func TestLedgerPayloadJSONReadsEveryPayload(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	ctx := context.Background()
	names := map[string]string{
		"msg_plain":     `"Zoë"`,
		"msg_nul":       `"Ja\u0000ne"`,
		"msg_surrogate": `"\ud800x\udc00"`,
		"msg_pair":      `"\ud83d\ude00"`,
		"msg_escaped":   `"back\\u0000slash"`,
		"msg_badutf8":   "\"M\xfcller\xed\xa0\x80\"",
	}
	want := map[string]string{
		"msg_plain":     "Zoë",
		"msg_nul":       "Ja\uFFFDne",
		"msg_surrogate": "\uFFFDx\uFFFD",
		"msg_pair":      "😀",
		"msg_escaped":   `back\u0000slash`,
		"msg_badutf8":   "M\uFFFDller\uFFFD\uFFFD\uFFFD",
	}
	for id, name := range names {
		e := entry(id)
		e.Payload = []byte(`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1","first_name":` + name + `}}`)
		_, err := s.Append(ctx, e)
		require.NoError(t, err)
	}
	// The query the README gave before: one such payload fails it whole.
	_, err := db.Pool.Exec(ctx, `SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'first_name' FROM ledger_events`)
	require.Error(t, err)

	// The README's example query, as printed there.
	rows, err := db.Pool.Query(ctx, `
SELECT "offset", svix_id, event_type, subject_id, received_at,
       ledger_payload_json(payload) -> 'data' ->> 'first_name' AS first_name
FROM ledger_events ORDER BY transaction_id, "offset" DESC LIMIT 10;`)
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var (
			offset                     int64
			svixID, eventType, subject string
			receivedAt                 time.Time
			first                      *string
		)
		require.NoError(t, rows.Scan(&offset, &svixID, &eventType, &subject, &receivedAt, &first))
		require.NotNil(t, first, svixID)
		got[svixID] = *first
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want, got)
}
