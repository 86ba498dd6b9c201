package seal_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// snapshotEntry is a user snapshot as `webhookd reconcile` appends it,
// signed with key.
func snapshotEntry(t *testing.T, key ed25519.PrivateKey, seed int64, at time.Time) domain.LedgerEntry {
	t.Helper()
	raw, err := clerkfake.APIUser(clerkfake.Options{Seed: seed, Time: at})
	require.NoError(t, err)
	e, _, err := domain.NewUserSnapshotEntry(raw, at.Add(time.Hour))
	require.NoError(t, err)
	seal.SignInternalEntry(key, &e)
	return e
}

// Reconciliation's entries (source clerk-api) carry no Svix signature:
// they verify only with webhookd's signature, as webhookd's own entries.
func TestOriginOfClerkAPIEntries(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	v := verifier(t, newSecret)
	require.NoError(t, v.Verify(snapshotEntry(t, testKey, 1, at)))
	gone, err := domain.NewUserNotFoundEntry("user_gone", at)
	require.NoError(t, err)
	seal.SignInternalEntry(testKey, &gone)
	require.NoError(t, v.Verify(gone))

	for name, c := range map[string]struct {
		change func(e *domain.LedgerEntry)
		reason string
	}{
		"unsigned":    {func(e *domain.LedgerEntry) { e.Signature = "" }, "it is not signed by webhookd (no ed25519:<key id>:<signature>)"},
		"svix-signed": {func(e *domain.LedgerEntry) { e.Signature = "v1,c2lnbmF0dXJl" }, "it is not signed by webhookd"},
		"another key": {func(e *domain.LedgerEntry) { seal.SignInternalEntry(otherKey, e) }, "which is not webhookd's signing key (WEBHOOKD_SIGNING_KEY)"},
		"another email": {func(e *domain.LedgerEntry) {
			e.Payload = []byte(strings.Replace(string(e.Payload), "@example.", "@forger-example.", 1))
		}, "does not match its content"},
		"another subject":  {func(e *domain.LedgerEntry) { e.SubjectID = "user_victim" }, "does not match its content"},
		"another source":   {func(e *domain.LedgerEntry) { e.Source = domain.SourceWebhookd }, "does not match its content"},
		"posing as clerk":  {func(e *domain.LedgerEntry) { e.Source = domain.SourceClerk }, "it has no svix signature, timestamp or id"},
		"another key (id)": {func(e *domain.LedgerEntry) { e.SvixID = "capi_user_x_1" }, "does not match its content"},
	} {
		e := snapshotEntry(t, testKey, 1, at)
		c.change(&e)
		err := v.Verify(e)
		require.ErrorIs(t, err, seal.ErrOrigin, name)
		require.ErrorContains(t, err, c.reason, name)
	}
}

// A snapshot forged with webhookd's database role (no key) is refused by
// the sealer, as a forged webhookd entry is.
func TestSealerRefusesAForgedSnapshot(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	ctx := context.Background()
	at := time.Now().UTC()
	_, err := l.Store.Append(ctx, snapshotEntry(t, testKey, 1, at))
	require.NoError(t, err)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.NoError(t, err, "a snapshot webhookd signed verifies")

	forged := snapshotEntry(t, otherKey, 2, at)
	off := l.insertRaw(forged)
	_, err = l.SealVerified(verifier(t, newSecret))
	require.ErrorIs(t, err, seal.ErrIntegrity)
	require.ErrorIs(t, err, seal.ErrOrigin)
	require.ErrorContains(t, err, fmt.Sprintf("ledger entry at offset %d (svix_id %s, source clerk-api, clerk.user.snapshot) does not prove its origin: it is signed by key %s, which is not webhookd's signing key",
		off, forged.SvixID, seal.KeyID(otherKey.Public().(ed25519.PublicKey))))
	require.EqualValues(t, 1, l.Indexed())
}
