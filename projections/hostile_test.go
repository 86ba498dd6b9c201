package projections_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/projections"
)

// appendBody puts a raw Clerk body in the ledger as a new delivery, with
// the facts ParseEnvelope reads from it, as the ingress does.
func (v *env) appendBody(body string) int64 {
	v.t.Helper()
	v.seq++
	parsed, err := domain.ParseEnvelope([]byte(body))
	require.NoError(v.t, err, body)
	_, err = v.store.Append(context.Background(), domain.LedgerEntry{
		SvixID: fmt.Sprintf("msg_h%d", v.seq), SvixTimestamp: t0, Signature: "v1,test",
		Source: domain.SourceClerk, EventType: parsed.Type, SubjectID: parsed.SubjectID, InstanceID: parsed.InstanceID,
		EventTime: parsed.Time, TimestampUnit: parsed.TimestampUnit, ReceivedAt: time.Now(), Payload: []byte(body),
	})
	require.NoError(v.t, err)
	var offset int64
	require.NoError(v.t, v.db.Pool.QueryRow(context.Background(), `SELECT "offset" FROM ledger_events WHERE svix_id = $1`, fmt.Sprintf("msg_h%d", v.seq)).Scan(&offset))
	return offset
}

func clerkBody(typ string, at time.Time, data string) string {
	return fmt.Sprintf(`{"object":"event","type":%q,"instance_id":"ins_1","timestamp":%d,"data":%s}`, typ, at.UnixMilli(), data)
}

// hostileLedger appends profiles PostgreSQL or a case-insensitive parser
// could not take, one entry that can never be applied (poison) and a valid
// user's event right behind it (the canary). It returns the poison's
// offset and the 8 kB email.
func hostileLedger(v *env) (poison int64, longEmail string) {
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	longEmail = hex.EncodeToString(random) + "@example.com" // incompressible, over a btree row's 2.7 kB
	ms := t0.UnixMilli()
	for _, data := range []string{
		// NUL in every projected string.
		fmt.Sprintf(`{"id":"user_nul","first_name":"Ja\u0000ne","last_name":"\u0000","image_url":"https://img.example.com/\u0000","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"nul\u0000@example.com"}],"updated_at":%d}`, ms),
		fmt.Sprintf(`{"id":"user_long","first_name":"Long","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":%q}],"updated_at":%d}`, longEmail, ms),
		// A lone surrogate escape and a byte that is not UTF-8.
		fmt.Sprintf(`{"id":"user_utf8","first_name":"\ud800x","last_name":"Mü`+"\xff"+`ller","updated_at":%d}`, ms),
		// Times no timestamptz column holds.
		`{"id":"user_time","first_name":"Time","created_at":-9000000000000000000,"updated_at":99999999999999999}`,
		// The victim and the bystander of a case-variant delete.
		fmt.Sprintf(`{"id":"user_victim","first_name":"Victim","updated_at":%d}`, ms),
		fmt.Sprintf(`{"id":"user_bystander","first_name":"Bystander","updated_at":%d}`, ms),
	} {
		v.appendBody(clerkBody(domain.EventUserCreated, t0, data))
	}
	// jsonb (and JavaScript) read data.id as user_victim; a
	// case-insensitive parser read user_bystander.
	v.appendBody(clerkBody(domain.EventUserDeleted, t0.Add(time.Minute), `{"id":"user_victim","ID":"user_bystander","deleted":true}`))
	// Poison: a Clerk user whose first_name is a number can never be
	// applied; the canary is the very next entry.
	poison = v.appendBody(clerkBody(domain.EventUserUpdated, t0, `{"id":"user_poison","first_name":5}`))
	v.appendBody(clerkBody(domain.EventUserCreated, t0, fmt.Sprintf(`{"id":"user_canary","first_name":"Canary","updated_at":%d}`, ms)))
	return poison, longEmail
}

func requireHostileUsers(t *testing.T, v *env, longEmail string) {
	t.Helper()
	users := v.users()
	for _, id := range []string{"user_nul", "user_long", "user_utf8", "user_time", "user_victim", "user_bystander", "user_canary"} {
		require.Contains(t, users, id)
	}
	nul := users["user_nul"]
	require.Equal(t, "Ja\uFFFDne", *nul.FirstName)
	require.Equal(t, "\uFFFD", *nul.LastName)
	require.Equal(t, "Ja\uFFFDne \uFFFD", *nul.Name)
	require.Equal(t, "nul\uFFFD@example.com", *nul.Email)
	require.Equal(t, "https://img.example.com/\uFFFD", *nul.ImageURL)
	require.Equal(t, longEmail, *users["user_long"].Email, "a long email is kept whole")
	require.Equal(t, "\uFFFDx", *users["user_utf8"].FirstName)
	require.Equal(t, "Mü\uFFFDller", *users["user_utf8"].LastName)
	require.Equal(t, t0, users["user_time"].UpdatedAt.UTC(), "an updated_at after the year 9999 reads as the event's time")
	require.Equal(t, t0, users["user_time"].CreatedAt.UTC())
	require.NotNil(t, users["user_victim"].DeletedAt, "data.id as jsonb reads it is deleted")
	require.Nil(t, users["user_bystander"].DeletedAt, "a case variant of id deletes nobody")
	require.Equal(t, "Canary", *users["user_canary"].FirstName)
	require.NotContains(t, users, "user_poison")

	var found string
	require.NoError(t, v.db.Pool.QueryRow(context.Background(),
		`SELECT clerk_id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL`, longEmail).Scan(&found))
	require.Equal(t, "user_long", found, "the long email can be looked up")
}

func (v *env) failures() []int64 {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT ledger_offset FROM projection_failures WHERE projection = 'users' ORDER BY 1`)
	require.NoError(v.t, err)
	var out []int64
	for rows.Next() {
		var o int64
		require.NoError(v.t, rows.Scan(&o))
		out = append(out, o)
	}
	require.NoError(v.t, rows.Err())
	return out
}

// TestHostileValuesLiveThenRebuild: values a signed Clerk event may carry
// and PostgreSQL refuses (NUL, invalid UTF-8, an 8 kB email, times out of
// range) reach users under the documented rules, a case-variant id deletes
// the user jsonb names, and an entry that can never be applied is recorded
// and skipped by the live projection, then skipped and reported by
// `replay users --check` and `replay users`, which both succeed.
func TestHostileValuesLiveThenRebuild(t *testing.T) {
	t.Parallel()
	v := setup(t)
	poison, longEmail := hostileLedger(v)
	v.run(projections.RunnerConfig{})()
	requireHostileUsers(t, v, longEmail)
	require.Equal(t, []int64{poison}, v.failures())

	ctx := context.Background()
	cfg := projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet}
	report, err := projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal, "check: %+v", report)
	require.Len(t, report.Skipped, 1)
	require.Equal(t, poison, report.Skipped[0].Offset)
	require.Equal(t, domain.EventUserUpdated, report.Skipped[0].EventType)
	require.Contains(t, report.Skipped[0].Error, `field "first_name" must be a string`)

	report, err = projections.Rebuild(ctx, cfg, projections.Users, false)
	require.NoError(t, err)
	require.True(t, report.Swapped)
	require.Len(t, report.Skipped, 1)
	requireHostileUsers(t, v, longEmail)
	require.Equal(t, []int64{poison}, v.failures())

	report, err = projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal, "check after the swap: %+v", report)
}

// TestRebuildRecordsWhatItSkips: a rebuild that meets an entry it cannot
// apply before the live projection ever did records it in
// projection_failures, as the live runner would, and the live projection
// that starts afterwards agrees with the rebuilt table.
func TestRebuildRecordsWhatItSkips(t *testing.T) {
	t.Parallel()
	v := setup(t)
	poison, longEmail := hostileLedger(v)
	ctx := context.Background()
	// Safe order reads only what no running transaction can precede: wait
	// until the whole ledger is readable, as the rebuild reads it.
	require.Eventually(t, func() bool {
		batch, err := eventstore.ScanAfter(ctx, v.db.Pool, eventstore.Position{}, eventstore.Position{}, 1000)
		require.NoError(t, err)
		return len(batch) == v.seq
	}, 30*time.Second, 10*time.Millisecond)
	cfg := projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet}
	report, err := projections.Rebuild(ctx, cfg, projections.Users, false)
	require.NoError(t, err)
	require.True(t, report.Swapped)
	require.Len(t, report.Skipped, 1)
	require.Equal(t, poison, report.Skipped[0].Offset)
	require.Equal(t, []int64{poison}, v.failures())
	requireHostileUsers(t, v, longEmail)

	v.appendBody(clerkBody(domain.EventUserUpdated, t0.Add(time.Hour), fmt.Sprintf(`{"id":"user_canary","first_name":"Later","updated_at":%d}`, t0.Add(time.Hour).UnixMilli())))
	v.run(projections.RunnerConfig{})()
	require.Equal(t, "Later", *v.users()["user_canary"].FirstName)
	report, err = projections.Rebuild(ctx, cfg, projections.Users, true)
	require.NoError(t, err)
	require.True(t, report.Equal, "%+v", report)
}

// An entry that can never be applied (its body does not decode as the
// read model needs) is recorded and skipped at its first failure: the
// entries behind it do not wait for the retries a transient failure gets
// (with an hour between retries, the canary would not arrive in time).
func TestUndecodableEntryIsSkippedWithoutRetries(t *testing.T) {
	t.Parallel()
	v := setup(t)
	poison := v.appendBody(clerkBody(domain.EventUserUpdated, t0, `{"id":"user_poison","first_name":5}`))
	v.appendBody(clerkBody(domain.EventUserCreated, t0, fmt.Sprintf(`{"id":"user_canary","first_name":"Canary","updated_at":%d}`, t0.UnixMilli())))
	v.run(projections.RunnerConfig{MaxAttempts: 5, RetryInterval: time.Hour})()
	require.Equal(t, "Canary", *v.users()["user_canary"].FirstName)
	require.Equal(t, []int64{poison}, v.failures())
	var attempts int
	require.NoError(t, v.db.Pool.QueryRow(context.Background(), `SELECT attempts FROM projection_failures WHERE ledger_offset = $1`, poison).Scan(&attempts))
	require.Equal(t, 1, attempts)
}
