package seal_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// Two Clerk signing secrets: an old and a new one.
const (
	oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	newSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// clerkEntry is a user event for user as Clerk's Svix delivers it: signed
// with secret by the real Svix library, with the facts ingress stores.
func clerkEntry(t *testing.T, secret, typ, user string, seed int64, at time.Time) domain.LedgerEntry {
	t.Helper()
	body := clerkfake.MustBuild(typ, clerkfake.Options{Seed: seed, UserID: user, Time: at})
	env, err := domain.ParseEnvelope(body)
	require.NoError(t, err)
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	id := fmt.Sprintf("msg_origin_%d", seed)
	sig, err := wh.Sign(id, at, body)
	require.NoError(t, err)
	return domain.LedgerEntry{
		SvixID: id, SvixTimestamp: at.Truncate(time.Second), Signature: sig, Source: domain.SourceClerk,
		EventType: env.Type, SubjectID: env.SubjectID, InstanceID: env.InstanceID, EventTime: env.Time,
		TimestampUnit: env.TimestampUnit, ReceivedAt: at.Add(300 * time.Millisecond), SourceIP: "203.0.113.9", Payload: body,
	}
}

// accessEntry is an access change as `webhookd users assign` appends it,
// signed with key.
func accessEntry(t *testing.T, key ed25519.PrivateKey, user, role string, at time.Time) domain.LedgerEntry {
	t.Helper()
	e, err := domain.NewInternalEntry(domain.EventUserAccessChanged, user,
		domain.AccessChange{ClerkID: user, Role: &role, Actor: "alice", Reason: "on call"}, at)
	require.NoError(t, err)
	seal.SignInternalEntry(key, &e)
	return e
}

// insertRaw inserts e with a plain SQL INSERT, as anyone holding webhookd's
// database role can: the ledger's triggers take the append lock and set the
// transaction id and offset. It returns the offset.
func (l *ledger) insertRaw(e domain.LedgerEntry) int64 {
	l.T.Helper()
	var off int64
	require.NoError(l.T, l.DB.Pool.QueryRow(context.Background(), `
		INSERT INTO ledger_events (uuid, svix_id, source, svix_timestamp, signature, event_type, subject_id,
			instance_id, event_time, timestamp_unit, received_at, source_ip, payload)
		VALUES (gen_random_uuid()::text, $1, $2, $3, nullif($4, ''), $5, $6, $7, $8, $9, $10, nullif($11, '')::inet, $12)
		RETURNING "offset"`,
		e.SvixID, e.Source, nullTime(e.SvixTimestamp), e.Signature, e.EventType, e.SubjectID, e.InstanceID,
		e.EventTime, e.TimestampUnit, e.ReceivedAt, e.SourceIP, e.Payload).Scan(&off))
	return off
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// forgerSecret signs rows webhookd did not receive: it is not configured.
const forgerSecret = "whsec_" + "Zm9yZ2VyeWZvcmdlcnlmb3JnZXJ5Zm9yZ2VyeQ=="

// addClerk appends n signed user.created deliveries, as the ingress does.
func (l *ledger) addClerk(n int, at time.Time) {
	l.T.Helper()
	for i := range n {
		_, err := l.Store.Append(context.Background(), clerkEntry(l.T, newSecret, "user.created", "", int64(i+1), at))
		require.NoError(l.T, err)
	}
}

func verifier(t *testing.T, secrets ...string) *seal.OriginVerifier {
	t.Helper()
	v, err := seal.NewOriginVerifier(secrets, testKey.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	return v
}

func TestSealerRefusesAForgedClerkRowInsertedWithWebhookdsRole(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	at := time.Now().UTC()
	l.addClerk(3, at)
	// A valid-looking user.updated for the first user, whose signature was
	// made with a secret webhookd does not have.
	forged := clerkEntry(t, forgerSecret, "user.updated", "user_victim", 99, at)
	off := l.insertRaw(forged)
	_, err := l.Store.Append(ctx, clerkEntry(t, newSecret, "user.updated", "", 4, at))
	require.NoError(t, err)

	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrIntegrity)
	require.ErrorIs(t, err, seal.ErrOrigin)
	require.EqualError(t, err, fmt.Sprintf("ledger integrity check failed: ledger entry at offset %d (svix_id msg_origin_99, source clerk, user.updated) does not prove its origin: the svix signature matches none of the 1 configured Clerk signing secrets (CLERK_WEBHOOK_SIGNING_SECRET, WEBHOOKD_RETIRED_SIGNING_SECRETS); it is not sealed, and sealing stops before it", off))
	require.EqualValues(t, 3, l.Indexed(), "the entries before the forged row are sealed, the forged row and those after it are not")
	cp, err := l.Store.LatestCheckpoint(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, cp.TreeSize, "what was sealed before the forged row is checkpointed")

	// Again and again: the sealer never moves past it.
	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrOrigin)
	require.EqualValues(t, 3, l.Indexed())
}

func TestSealerCatchesARowBackdatedWithTriggersDisabled(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	at := time.Now().UTC()
	l.addClerk(3, at)
	_, err := l.SealVerified(verifier(t, newSecret))
	require.NoError(t, err)

	// A superuser disables the triggers and inserts a row (correctly
	// signed, even) with a transaction id and offset before the sealed
	// position: no reader in (transaction_id, offset) order reaches it.
	backdated := clerkEntry(t, newSecret, "user.updated", "", 7, at)
	tx, err := l.DB.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
		INSERT INTO ledger_events ("offset", transaction_id, uuid, svix_id, source, svix_timestamp, signature, event_type,
			subject_id, instance_id, event_time, timestamp_unit, received_at, payload)
		VALUES (-5, '1', gen_random_uuid()::text, $1, 'clerk', $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		backdated.SvixID, backdated.SvixTimestamp, backdated.Signature, backdated.EventType, backdated.SubjectID,
		backdated.InstanceID, backdated.EventTime, backdated.TimestampUnit, backdated.ReceivedAt, backdated.Payload)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	_, err = l.Store.Append(ctx, clerkEntry(t, newSecret, "user.updated", "", 8, at))
	require.NoError(t, err)

	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrIntegrity)
	require.EqualError(t, err, "ledger integrity check failed: 1 ledger row(s) sort behind the last sealed entry but have no ledger index, at offset(s) [-5]: they were inserted out of order (with the ledger's triggers disabled) and can never be sealed or projected")
	require.EqualValues(t, 4, l.Indexed(), "the row appended in order after it is sealed")

	// A second one is named too.
	_, err = l.DB.Pool.Exec(ctx, `
		BEGIN; SET LOCAL session_replication_role = replica;
		INSERT INTO ledger_events ("offset", transaction_id, uuid, svix_id, source, event_type, subject_id, instance_id,
			event_time, timestamp_unit, received_at, payload)
		VALUES (-9, '2', 'u', 'whd_backdated', 'webhookd', 'webhookd.user.access_changed', 'user_x', 'webhookd',
			now(), 'ms', now(), '{}');
		COMMIT;`)
	require.NoError(t, err)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorContains(t, err, "2 ledger row(s) sort behind the last sealed entry but have no ledger index, at offset(s) [-5 -9]")
}

func TestSealerCatchesATamperedWebhookdEntry(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	at := time.Now().UTC()
	honest := accessEntry(t, testKey, "user_1", "USER", at)
	_, err := l.Store.Append(ctx, honest)
	require.NoError(t, err)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.NoError(t, err, "an entry webhookd signed when appending it verifies")

	// The same signed entry, with its payload changed to grant ADMIN.
	tampered := accessEntry(t, testKey, "user_1", "USER", at)
	tampered.SvixID = "whd_" + strings.Repeat("ab", 16)
	seal.SignInternalEntry(testKey, &tampered)
	tampered.Payload = []byte(strings.Replace(string(tampered.Payload), `"role":"USER"`, `"role":"ADMIN"`, 1))
	require.Contains(t, string(tampered.Payload), `"role":"ADMIN"`)
	off := l.insertRaw(tampered)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrOrigin)
	require.ErrorContains(t, err, fmt.Sprintf("ledger entry at offset %d (svix_id whd_abab", off))
	require.ErrorContains(t, err, "its webhookd signature (key "+seal.KeyID(testKey.Public().(ed25519.PublicKey))+") does not match its content: the entry was altered or forged")
	require.EqualValues(t, 1, l.Indexed())
}

func TestOriginOfWebhookdEntries(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	v := verifier(t, newSecret)
	signed := accessEntry(t, testKey, "user_1", "ADMIN", at)
	require.NoError(t, v.Verify(signed))
	require.True(t, strings.HasPrefix(signed.Signature, "ed25519:"+seal.KeyID(testKey.Public().(ed25519.PublicKey))+":"), signed.Signature)
	require.Equal(t, at.Truncate(time.Microsecond), signed.ReceivedAt, "signed as PostgreSQL keeps it")

	for name, c := range map[string]struct {
		change func(e *domain.LedgerEntry)
		reason string
	}{
		"unsigned":                {func(e *domain.LedgerEntry) { e.Signature = "" }, "it is not signed by webhookd (no ed25519:<key id>:<signature>)"},
		"a svix signature":        {func(e *domain.LedgerEntry) { e.Signature = "v1,c2lnbmF0dXJl" }, "it is not signed by webhookd (no ed25519:<key id>:<signature>)"},
		"malformed":               {func(e *domain.LedgerEntry) { e.Signature = "ed25519:abc" }, "its webhookd signature is malformed"},
		"another key":             {func(e *domain.LedgerEntry) { seal.SignInternalEntry(otherKey, e) }, "it is signed by key " + seal.KeyID(otherKey.Public().(ed25519.PublicKey)) + ", which is not webhookd's signing key (WEBHOOKD_SIGNING_KEY)"},
		"a hostile key id":        {func(e *domain.LedgerEntry) { e.Signature = "ed25519:<b>x@y.z</b>:" + strings.Repeat("A", 86) + "==" }, "it is signed by key (malformed key id), which is not webhookd's signing key (WEBHOOKD_SIGNING_KEY)"},
		"another subject":         {func(e *domain.LedgerEntry) { e.SubjectID = "user_2" }, "does not match its content"},
		"another received_at":     {func(e *domain.LedgerEntry) { e.ReceivedAt = e.ReceivedAt.Add(time.Microsecond) }, "does not match its content"},
		"another svix_id":         {func(e *domain.LedgerEntry) { e.SvixID = "whd_" + strings.Repeat("0", 32) }, "does not match its content"},
		"posing as clerk":         {func(e *domain.LedgerEntry) { e.Source = domain.SourceClerk }, "it has no svix signature, timestamp or id"},
		"another type":            {func(e *domain.LedgerEntry) { e.EventType = "webhookd.export.created" }, "does not match its content"},
		"another source ip":       {func(e *domain.LedgerEntry) { e.SourceIP = "198.51.100.1" }, "does not match its content"},
		"a payload byte appended": {func(e *domain.LedgerEntry) { e.Payload = append(e.Payload, ' ') }, "does not match its content"},
	} {
		e := accessEntry(t, testKey, "user_1", "ADMIN", at)
		c.change(&e)
		err := v.Verify(e)
		require.ErrorIs(t, err, seal.ErrOrigin, name)
		require.ErrorContains(t, err, c.reason, name)
	}

	noKey, err := seal.NewOriginVerifier([]string{newSecret})
	require.NoError(t, err)
	require.ErrorContains(t, noKey.Verify(signed), "which is not webhookd's signing key", "without the key nothing webhookd signed verifies")
}

func TestOriginOfClerkRows(t *testing.T) {
	t.Parallel()
	at := time.Now().UTC().Add(-48 * time.Hour) // stored rows are checked whatever their age
	good := clerkEntry(t, newSecret, "user.updated", "user_1", 1, at)
	v := verifier(t, newSecret)
	require.NoError(t, v.Verify(good))

	other, err := svix.NewWebhook(oldSecret)
	require.NoError(t, err)
	otherSig, err := other.Sign(good.SvixID, good.SvixTimestamp, good.Payload)
	require.NoError(t, err)
	mine, err := svix.NewWebhook(newSecret)
	require.NoError(t, err)

	for name, c := range map[string]struct {
		change func(e *domain.LedgerEntry)
		reason string // "" when it still verifies
	}{
		"several signatures, one valid (as Svix sends during a rotation)": {func(e *domain.LedgerEntry) { e.Signature = otherSig + " v1,Zm9v " + e.Signature }, ""},
		"several signatures, none valid": {func(e *domain.LedgerEntry) {
			e.Signature = otherSig + " v1,Zm9v v2," + strings.TrimPrefix(e.Signature, "v1,")
		}, "matches none of the 1 configured"},
		"the valid signature under another version": {func(e *domain.LedgerEntry) { e.Signature = "v1a," + strings.TrimPrefix(e.Signature, "v1,") }, "matches none"},
		"a valid signature of another svix_id":      {func(e *domain.LedgerEntry) { e.SvixID = "msg_other" }, "matches none"},
		"a valid signature of another timestamp":    {func(e *domain.LedgerEntry) { e.SvixTimestamp = e.SvixTimestamp.Add(time.Second) }, "matches none"},
		"the timestamp with a fraction of a second": {func(e *domain.LedgerEntry) { e.SvixTimestamp = e.SvixTimestamp.Add(time.Millisecond) }, "its svix_timestamp is not the signed one"},
		"no signature": {func(e *domain.LedgerEntry) { e.Signature = "" }, "it has no svix signature, timestamp or id"},
		"no timestamp": {func(e *domain.LedgerEntry) { e.SvixTimestamp = time.Time{} }, "it has no svix signature, timestamp or id"},
		"a payload byte changed": {func(e *domain.LedgerEntry) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "user_1", "user_2", 1))
		}, "matches none"},
		"another subject beside the signed payload":    {func(e *domain.LedgerEntry) { e.SubjectID = "user_2" }, "its subject_id is not what the signed payload says"},
		"another type beside the signed payload":       {func(e *domain.LedgerEntry) { e.EventType = "user.deleted" }, "its event_type is not what the signed payload says"},
		"another event time beside the signed payload": {func(e *domain.LedgerEntry) { e.EventTime = e.EventTime.Add(time.Hour) }, "its event_time is not what the signed payload says"},
		"another instance beside the signed payload":   {func(e *domain.LedgerEntry) { e.InstanceID = "ins_other" }, "its instance_id is not what the signed payload says"},
		"another unit beside the signed payload":       {func(e *domain.LedgerEntry) { e.TimestampUnit = "s" }, "its timestamp_unit is not what the signed payload says"},
		"a webhookd signature on a clerk row":          {func(e *domain.LedgerEntry) { seal.SignInternalEntry(testKey, e) }, "matches none"},
		"an unknown source":                            {func(e *domain.LedgerEntry) { e.Source = "clerk-import" }, "unknown source"},
		"posing as clerk-api":                          {func(e *domain.LedgerEntry) { e.Source = domain.SourceClerkAPI }, "it is not signed by webhookd"},
		"signed by Svix, not a Clerk envelope": {func(e *domain.LedgerEntry) {
			e.Payload = []byte(`{"hello":"world"}`)
			e.Signature, _ = mine.Sign(e.SvixID, e.SvixTimestamp, e.Payload)
		}, "its signed payload is not a Clerk event envelope"},
	} {
		e := clerkEntry(t, newSecret, "user.updated", "user_1", 1, at)
		c.change(&e)
		err := v.Verify(e)
		if c.reason == "" {
			require.NoError(t, err, name)
			continue
		}
		require.ErrorIs(t, err, seal.ErrOrigin, name)
		require.ErrorContains(t, err, c.reason, name)
	}
}

func TestSecretRotation(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	at := time.Now().UTC()
	_, err := l.Store.Append(ctx, clerkEntry(t, oldSecret, "user.created", "", 1, at))
	require.NoError(t, err)
	_, err = l.Store.Append(ctx, clerkEntry(t, newSecret, "user.updated", "", 2, at))
	require.NoError(t, err)

	// Only the new secret: the row the old one signed is refused.
	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrOrigin)
	require.EqualValues(t, 0, l.Indexed())

	// Both (the old one active, or kept as a retired secret): both verify.
	_, err = l.SealVerified(verifier(t, newSecret, oldSecret))
	require.NoError(t, err)
	require.EqualValues(t, 2, l.Indexed())

	// Sealed rows are not checked again: the old secret may go now.
	_, err = l.Store.Append(ctx, clerkEntry(t, newSecret, "user.updated", "", 3, at))
	require.NoError(t, err)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.NoError(t, err)
	require.EqualValues(t, 3, l.Indexed())
	require.False(t, errors.Is(err, seal.ErrIntegrity))
}
