package main

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// insertForged inserts, with a plain INSERT as webhookd's own database role
// can, a Clerk-looking user.updated for clerkID that sets email, signed
// with a secret webhookd does not have. It returns the offset.
func (h *harness) insertForged(svixID, clerkID string) int64 {
	h.t.Helper()
	body := clerkfake.MustBuild("user.updated", clerkfake.Options{ID: clerkID, Time: h.now.Add(time.Hour)})
	env, err := domain.ParseEnvelope(body)
	require.NoError(h.t, err)
	sig := signed(h.t, "whsec_Zm9yZ2VyeWZvcmdlcnlmb3JnZXJ5Zm9yZ2VyeQ==", svixID, h.now, body).Get("svix-signature")
	var off int64
	require.NoError(h.t, h.db.Pool.QueryRow(context.Background(), `
		INSERT INTO ledger_events (uuid, payload, svix_id, source, svix_timestamp, signature, event_type, subject_id,
			instance_id, event_time, timestamp_unit, received_at)
		VALUES (gen_random_uuid()::text, $1, $2, 'clerk', $3, $4, 'user.updated', $5, $6, $7, $8, now())
		RETURNING "offset"`, body, svixID, h.now.Truncate(time.Second), sig, clerkID, env.InstanceID, env.Time, env.TimestampUnit).Scan(&off))
	return off
}

func (h *harness) email(clerkID string) string {
	h.t.Helper()
	var email string
	require.NoError(h.t, h.db.Pool.QueryRow(context.Background(), `SELECT coalesce(email, '') FROM users WHERE clerk_id = $1`, clerkID).Scan(&email))
	return email
}

// A forged user.updated inserted with webhookd's own database role is not
// projected (recorded in projection_failures as origin_unverified) and not
// sealed (sealer_integrity_failure names it); deliveries after it are
// still projected.
func TestForgedRowIsNeitherProjectedNorSealed(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	ctx := context.Background()
	const victim = "user_29w83sxmDNGwOuEthce5gg56FcC"
	require.Equal(t, "accepted", h.deliver("msg_victim", fixture(t, "user.created.json")).body["status"])
	h.waitCheckpoint(1)
	require.Eventually(t, func() bool { return usersCount(t, h.db) == 1 }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "example@example.org", h.email(victim))

	off := h.insertForged("msg_forged", victim)
	h.deliverN(0, 2)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n))
		return n == 3
	}, 20*time.Second, 10*time.Millisecond, "the deliveries after the forged row are projected")
	var failure string
	require.Eventually(t, func() bool {
		return h.db.Pool.QueryRow(ctx, `SELECT error FROM projection_failures WHERE ledger_offset = $1`, off).Scan(&failure) == nil
	}, 20*time.Second, 10*time.Millisecond)
	require.True(t, strings.HasPrefix(failure, "origin_unverified: ledger entry at offset"), failure)
	require.Contains(t, failure, "(svix_id msg_forged, source clerk, user.updated) does not prove its origin: the svix signature matches none of the 1 configured Clerk signing secrets")
	require.Equal(t, "example@example.org", h.email(victim), "the forged profile never reached users")

	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), `"msg":"sealer_integrity_failure"`) }, 20*time.Second, 10*time.Millisecond)
	line := h.logLine(`"msg":"sealer_integrity_failure"`)
	require.Contains(t, line["error"], "svix_id msg_forged")
	var indexed int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_index i JOIN ledger_events e ON e."offset" = i.ledger_offset WHERE e.svix_id = 'msg_forged'`).Scan(&indexed))
	require.Zero(t, indexed, "never sealed")
}

// users assign signs the access change with WEBHOOKD_SIGNING_KEY, which
// the sealer and the projection accept; without the key a sealed ledger is
// refused; a forged access change granting ADMIN is not projected.
func TestUsersAssignSignsOnASealedLedger(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	ctx := context.Background()
	const clerkID = "user_29w83sxmDNGwOuEthce5gg56FcC"
	require.Equal(t, "accepted", h.deliver("msg_assign", fixture(t, "user.created.json")).body["status"])
	h.waitCheckpoint(1)

	role := "ADMIN"
	err := (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Role: &role, Actor: "ops"}).Run(ctx, &Globals{})
	require.EqualError(t, err, bundle.ErrNoSigningKeyToAppend)
	err = (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Role: &role, Actor: "ops", SigningKey: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}).Run(ctx, &Globals{})
	require.ErrorContains(t, err, "is not the key that signed the latest checkpoint")

	// A forged grant, unsigned, as the command used to append it.
	forged, err := domain.NewInternalEntry(domain.EventUserAccessChanged, clerkID, domain.AccessChange{ClerkID: clerkID, Role: &role, Actor: "mallory"}, h.now)
	require.NoError(t, err)
	_, err = h.store.Append(ctx, forged)
	require.NoError(t, err)
	var failure string
	require.Eventually(t, func() bool {
		return h.db.Pool.QueryRow(ctx, `SELECT error FROM projection_failures WHERE svix_id = $1`, forged.SvixID).Scan(&failure) == nil
	}, 20*time.Second, 10*time.Millisecond)
	require.Contains(t, failure, "origin_unverified: ")
	require.Contains(t, failure, "it is not signed by webhookd")
	var got string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT role FROM users WHERE clerk_id = $1`, clerkID).Scan(&got))
	require.Equal(t, "USER", got)

	user := "USER"
	require.NoError(t, (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Role: &user, Actor: "ops", SigningKey: sealKeyText}).Run(ctx, &Globals{}))
	practice := "prac_1"
	require.NoError(t, (&UsersAssignCmd{Database: Database{URL: h.db.URL}, ClerkID: clerkID, Practice: &practice, Force: true, Actor: "ops", SigningKey: sealKeyText}).Run(ctx, &Globals{}))
	require.Eventually(t, func() bool {
		var p *string
		return h.db.Pool.QueryRow(ctx, `SELECT practice_id FROM users WHERE clerk_id = $1`, clerkID).Scan(&p) == nil && p != nil && *p == practice
	}, 20*time.Second, 10*time.Millisecond, "a signed access change is projected")
	var sig string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT signature FROM ledger_events WHERE source = 'webhookd' AND svix_id <> $1 LIMIT 1`, forged.SvixID).Scan(&sig))
	require.True(t, strings.HasPrefix(sig, "ed25519:"+seal.KeyID(sealKey.Public().(ed25519.PublicKey))+":"), sig)
}
