package clerkfake_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/fixtures"
)

var fixedTime = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// envelope is what every built event must carry.
type envelope struct {
	Data            map[string]any `json:"data"`
	EventAttributes struct {
		HTTPRequest struct {
			ClientIP  string `json:"client_ip"`
			UserAgent string `json:"user_agent"`
		} `json:"http_request"`
	} `json:"event_attributes"`
	InstanceID string          `json:"instance_id"`
	Object     string          `json:"object"`
	Timestamp  json.RawMessage `json:"timestamp"`
	Type       string          `json:"type"`
	raw        map[string]any
}

func decode(t *testing.T, body []byte) envelope {
	t.Helper()
	require.True(t, json.Valid(body), "body is not valid JSON: %s", body)
	var env envelope
	require.NoError(t, json.Unmarshal(body, &env))
	require.NoError(t, json.Unmarshal(body, &env.raw))
	require.Len(t, env.raw, 6, "envelope keys: data, event_attributes, instance_id, object, timestamp, type")
	return env
}

var idPattern = regexp.MustCompile(`^[a-z_]+_[0-9A-Za-z]{27}$`)

func TestTypesCoverClerkEvents(t *testing.T) {
	t.Parallel()
	required := []string{
		"user.created", "user.updated", "user.deleted",
		"session.created", "session.ended", "session.removed", "session.revoked", "session.pending",
		"email.created", "sms.created",
		"organization.created", "organization.updated", "organization.deleted",
		"organizationDomain.created", "organizationDomain.updated", "organizationDomain.deleted",
		"organizationInvitation.created", "organizationInvitation.accepted", "organizationInvitation.revoked",
		"organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
		"role.created", "role.updated", "role.deleted",
		"permission.created", "permission.updated", "permission.deleted",
		"waitlistEntry.created", "waitlistEntry.updated",
		"subscription.created", "subscription.updated", "subscription.active", "subscription.pastDue",
		"subscriptionItem.created", "subscriptionItem.canceled", "subscriptionItem.freeTrialEnding",
		"paymentAttempt.created", "paymentAttempt.updated",
	}
	for _, typ := range required {
		require.Contains(t, clerkfake.Types, typ)
		require.True(t, clerkfake.Known(typ), typ)
	}
	sorted := slices.Clone(clerkfake.Types)
	slices.Sort(sorted)
	require.Len(t, slices.Compact(sorted), len(clerkfake.Types), "Types has duplicates")
	require.False(t, clerkfake.Known("user.exploded"))
}

func TestBuildEveryType(t *testing.T) {
	t.Parallel()
	for _, typ := range clerkfake.Types {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			prefix, ok := clerkfake.IDPrefix(typ)
			require.True(t, ok)
			for _, o := range []clerkfake.Options{
				{Time: fixedTime},
				{Time: fixedTime, Seed: 42},
				{}, // time.Now()
			} {
				before := time.Now().UnixMilli()
				body, err := clerkfake.Build(typ, o)
				require.NoError(t, err)
				env := decode(t, body)

				require.Equal(t, "event", env.Object)
				require.Equal(t, typ, env.Type)
				require.Equal(t, clerkfake.DefaultInstanceID, env.InstanceID)
				require.True(t, strings.HasPrefix(env.InstanceID, "ins_"))
				require.NotEmpty(t, env.EventAttributes.HTTPRequest.ClientIP)
				require.NotEmpty(t, env.EventAttributes.HTTPRequest.UserAgent)

				ts, err := strconv.ParseInt(string(env.Timestamp), 10, 64)
				require.NoError(t, err, "timestamp must be an integer, got %s", env.Timestamp)
				if o.Time.IsZero() {
					require.GreaterOrEqual(t, ts, before)
					require.LessOrEqual(t, ts, time.Now().UnixMilli())
				} else {
					require.Equal(t, fixedTime.UnixMilli(), ts, "timestamp must be unix ms")
				}

				id, ok := env.Data["id"].(string)
				require.True(t, ok, "data.id must be a string")
				require.True(t, strings.HasPrefix(id, prefix), "data.id %q lacks prefix %q", id, prefix)
				require.Regexp(t, idPattern, id)
				require.NotEmpty(t, env.Data["object"], "data.object")

				if upd, ok := env.Data["updated_at"]; ok {
					require.Equal(t, float64(ts), upd, "data.updated_at is the event time in ms")
					created, ok := env.Data["created_at"].(float64)
					require.True(t, ok)
					require.LessOrEqual(t, created, upd)
					if strings.HasSuffix(typ, ".created") {
						require.Equal(t, upd, created)
					}
				}
			}
		})
	}
}

func TestTimestampInSeconds(t *testing.T) {
	t.Parallel()
	env := decode(t, clerkfake.MustBuild("user.created", clerkfake.Options{Time: fixedTime, TimestampInSeconds: true}))
	require.Equal(t, strconv.FormatInt(fixedTime.Unix(), 10), string(env.Timestamp))
	require.Equal(t, float64(fixedTime.UnixMilli()), env.Data["updated_at"], "data keeps milliseconds")
}

func TestUserPayload(t *testing.T) {
	t.Parallel()
	primarySecond, primaryFirst := 0, 0
	check := func(body []byte) {
		t.Helper()
		require.GreaterOrEqual(t, len(body), 1200, "user event too small")
		require.LessOrEqual(t, len(body), 2048, "user event too large")
		env := decode(t, body)
		emails, ok := env.Data["email_addresses"].([]any)
		require.True(t, ok)
		require.Len(t, emails, 2)
		primary := env.Data["primary_email_address_id"]
		found := -1
		for i, e := range emails {
			e := e.(map[string]any)
			require.Equal(t, "email_address", e["object"])
			addr := e["email_address"].(string)
			require.Regexp(t, `@example\.(com|org|net)$`, addr)
			if e["id"] == primary {
				found = i
			}
		}
		require.NotEqual(t, -1, found, "primary_email_address_id matches no email address")
		if found == 0 {
			primaryFirst++
		} else {
			primarySecond++
		}
		for _, k := range []string{"phone_numbers", "external_accounts", "web3_wallets"} {
			require.IsType(t, []any{}, env.Data[k], k)
		}
		for _, k := range []string{"public_metadata", "private_metadata", "unsafe_metadata"} {
			require.IsType(t, map[string]any{}, env.Data[k], k)
		}
		require.NotEmpty(t, env.Data["first_name"])
		require.NotEmpty(t, env.Data["last_name"])
	}
	for seed := int64(1); seed <= 300; seed++ {
		check(clerkfake.MustBuild("user.created", clerkfake.Options{Seed: seed, Time: fixedTime}))
		check(clerkfake.MustBuild("user.updated", clerkfake.Options{Seed: seed, Time: fixedTime}))
	}
	for range 100 {
		check(clerkfake.MustBuild("user.updated", clerkfake.Options{}))
	}
	require.Positive(t, primaryFirst, "primary email never first")
	require.Positive(t, primarySecond, "primary email never second")
}

func TestPrimaryEmailAndOverrides(t *testing.T) {
	t.Parallel()
	for pos := 1; pos <= 2; pos++ {
		body := clerkfake.MustBuild("user.updated", clerkfake.Options{
			ID: "user_override", Email: "zoe.angstrom@example.org", FirstName: "Zoë", LastName: "Ångström",
			PrimaryEmail: pos, Time: fixedTime,
		})
		require.Contains(t, string(body), `"first_name":"Zoë"`, "unicode is written raw")
		env := decode(t, body)
		require.Equal(t, "user_override", env.Data["id"])
		require.Equal(t, "Ångström", env.Data["last_name"])
		emails := env.Data["email_addresses"].([]any)
		primary := emails[pos-1].(map[string]any)
		require.Equal(t, env.Data["primary_email_address_id"], primary["id"])
		require.Equal(t, "zoe.angstrom@example.org", primary["email_address"])
	}
}

func TestUserDeleted(t *testing.T) {
	t.Parallel()
	env := decode(t, clerkfake.MustBuild("user.deleted", clerkfake.Options{ID: "user_gone", Time: fixedTime}))
	require.Equal(t, map[string]any{"deleted": true, "id": "user_gone", "object": "user"}, env.Data)
}

func TestReferences(t *testing.T) {
	t.Parallel()
	o := clerkfake.Options{UserID: "user_someone", OrgID: "org_somewhere", Time: fixedTime}

	session := decode(t, clerkfake.MustBuild("session.revoked", o)).Data
	require.Equal(t, "user_someone", session["user_id"])
	require.Equal(t, "revoked", session["status"])
	require.Equal(t, "user_someone", session["user"].(map[string]any)["id"])
	require.Equal(t, "pending", decode(t, clerkfake.MustBuild("session.pending", o)).Data["status"])
	require.Less(t, session["created_at"], session["updated_at"])
	require.Less(t, session["updated_at"], session["expire_at"], "a session event happens before the session expires")

	mem := decode(t, clerkfake.MustBuild("organizationMembership.created", o)).Data
	require.Equal(t, "user_someone", mem["public_user_data"].(map[string]any)["user_id"])
	require.Equal(t, "org_somewhere", mem["organization"].(map[string]any)["id"])

	inv := decode(t, clerkfake.MustBuild("organizationInvitation.accepted", o)).Data
	require.Equal(t, "accepted", inv["status"])
	require.Equal(t, "user_someone", inv["user_id"])
	require.Equal(t, "org_somewhere", inv["organization_id"])

	org := decode(t, clerkfake.MustBuild("organization.updated", o)).Data
	require.Equal(t, "org_somewhere", org["id"])
	require.Equal(t, map[string]any{"deleted": true, "id": "org_somewhere", "object": "organization"},
		decode(t, clerkfake.MustBuild("organization.deleted", o)).Data)

	// Unseeded: one event still names one user throughout.
	s := decode(t, clerkfake.MustBuild("session.created", clerkfake.Options{})).Data
	require.Equal(t, s["user_id"], s["user"].(map[string]any)["id"])
}

func TestDeterministicWithSeed(t *testing.T) {
	t.Parallel()
	for _, typ := range clerkfake.Types {
		o := clerkfake.Options{Seed: 7, Time: fixedTime}
		require.Equal(t, string(clerkfake.MustBuild(typ, o)), string(clerkfake.MustBuild(typ, o)), typ)
		other := clerkfake.Options{Seed: 8, Time: fixedTime}
		require.NotEqual(t, string(clerkfake.MustBuild(typ, o)), string(clerkfake.MustBuild(typ, other)), typ)
	}
	// One seed, one user across event types and times.
	created := decode(t, clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 99, Time: fixedTime})).Data
	updated := decode(t, clerkfake.MustBuild("user.updated", clerkfake.Options{Seed: 99, Time: fixedTime.Add(time.Hour)})).Data
	deleted := decode(t, clerkfake.MustBuild("user.deleted", clerkfake.Options{Seed: 99})).Data
	session := decode(t, clerkfake.MustBuild("session.created", clerkfake.Options{Seed: 99})).Data
	require.Equal(t, created["id"], updated["id"])
	require.Equal(t, created["id"], deleted["id"])
	require.Equal(t, created["id"], session["user_id"])
	require.Equal(t, created["primary_email_address_id"], updated["primary_email_address_id"])
	require.Equal(t, created["email_addresses"], updated["email_addresses"])
	require.Less(t, created["updated_at"], updated["updated_at"])
	// Unseeded builds differ.
	require.NotEqual(t, string(clerkfake.MustBuild("user.created", clerkfake.Options{Time: fixedTime})),
		string(clerkfake.MustBuild("user.created", clerkfake.Options{Time: fixedTime})))
}

func TestBuildUnknownType(t *testing.T) {
	t.Parallel()
	_, err := clerkfake.Build("organizationmembership.created", clerkfake.Options{})
	require.Error(t, err)
	require.True(t, errors.Is(err, clerkfake.ErrUnknownType))
	require.Contains(t, err.Error(), "clerkfake.Types")
	require.Contains(t, err.Error(), `did you mean "organizationMembership.created"`)
	_, err = clerkfake.BuildData("", clerkfake.Options{})
	require.ErrorIs(t, err, clerkfake.ErrUnknownType)
	_, ok := clerkfake.IDPrefix("nope.nope")
	require.False(t, ok)
}

func TestIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := clerkfake.NewMsgID()
		require.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, id)
		require.False(t, seen[id], "duplicate msg id")
		seen[id] = true
	}
	require.Regexp(t, `^user_[0-9A-Za-z]{27}$`, clerkfake.NewID("user_"))
	// KSUIDs sort by time: an id made now sorts after one in a 2022 event.
	require.Greater(t, clerkfake.NewID("user_"), "user_29w83sxmDNGwOuEthce5gg56FcC")
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := clerkfake.NewSecret(), clerkfake.NewSecret()
	require.NotEqual(t, a, b)
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{32}$`, a)
	_, err := svix.NewWebhook(a)
	require.NoError(t, err)
}

// headersWithSet copies h the way the design asks tests to build headers:
// with Set, never a map literal.
func headersWithSet(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		out.Set(k, h.Get(k))
	}
	return out
}

func TestSignVerifies(t *testing.T) {
	t.Parallel()
	secret := clerkfake.NewSecret()
	body := clerkfake.MustBuild("user.created", clerkfake.Options{})
	h, err := clerkfake.Sign(secret, "", time.Now(), body)
	require.NoError(t, err)
	require.Len(t, h, 3)
	require.Regexp(t, `^msg_[0-9A-Za-z]{27}$`, h.Get("svix-id"))
	require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, h.Get("svix-signature"))

	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(body, headersWithSet(h)))
	require.NoError(t, wh.Verify(body, h))

	other, err := svix.NewWebhook(clerkfake.NewSecret())
	require.NoError(t, err)
	require.Error(t, other.Verify(body, headersWithSet(h)), "a wrong secret must not verify")

	tampered := slices.Clone(body)
	tampered[len(tampered)-2] ^= 1
	require.Error(t, wh.Verify(tampered, headersWithSet(h)), "a changed body must not verify")

	old, err := clerkfake.Sign(secret, "msg_x", time.Now().Add(-time.Hour), body)
	require.NoError(t, err)
	require.Error(t, wh.Verify(body, old), "outside the 5-minute tolerance")
	require.NoError(t, wh.VerifyIgnoringTimestamp(body, old))
	require.Equal(t, "msg_x", old.Get("svix-id"))
}

func TestSignAllRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := clerkfake.NewSecret(), clerkfake.NewSecret()
	body := clerkfake.MustBuild("user.updated", clerkfake.Options{})
	h, err := clerkfake.SignAll([]string{oldSecret, newSecret}, "", time.Time{}, body)
	require.NoError(t, err)
	require.Len(t, strings.Fields(h.Get("svix-signature")), 2)
	for _, s := range []string{oldSecret, newSecret} {
		wh, err := svix.NewWebhook(s)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, h))
	}
}

func TestSignBadSecret(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{"", "plain", "whsec_not*base64!"} {
		_, err := clerkfake.Sign(secret, "msg_1", time.Now(), []byte("{}"))
		require.Error(t, err, secret)
		if secret != "" {
			require.NotContains(t, err.Error(), secret, "errors must not echo the secret")
		}
	}
	_, err := clerkfake.SignAll(nil, "", time.Now(), nil)
	require.Error(t, err)
}

// TestSignGoLibraryVector is the svix Go library's own TestWebhookSign
// vector, written out so a change to the fixture file cannot hide it.
func TestSignGoLibraryVector(t *testing.T) {
	t.Parallel()
	h, err := clerkfake.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", h.Get("svix-signature"))
	require.Equal(t, "1614265330", h.Get("svix-timestamp"))
	require.Equal(t, "msg_p5jXN8AQM9LWM0D4loKWxJek", h.Get("svix-id"))
}

func TestSignSvixVectors(t *testing.T) {
	t.Parallel()
	vectors := fixtures.SvixVectors()
	require.NotEmpty(t, vectors)
	for _, v := range vectors {
		h, err := clerkfake.Sign(v.Secret, v.MsgID, time.Unix(v.Timestamp, 0), []byte(v.Payload))
		require.NoError(t, err, v.Source)
		require.Equal(t, v.Signature, h.Get("svix-signature"), v.Source)

		wh, err := svix.NewWebhook(v.Secret)
		require.NoError(t, err)
		require.NoError(t, wh.VerifyIgnoringTimestamp([]byte(v.Payload), h), v.Source)
		if v.KnownBadSignature != "" {
			require.NotEqual(t, v.KnownBadSignature, h.Get("svix-signature"))
			bad := headersWithSet(h)
			bad.Set("svix-signature", v.KnownBadSignature)
			require.Error(t, wh.VerifyIgnoringTimestamp([]byte(v.Payload), bad), v.Source)
		}
	}
}

func TestFixtureShapesMatch(t *testing.T) {
	t.Parallel()
	// Every key of Clerk's published examples that the fake leaves out
	// would be a surprise to a consumer tested only against the fake;
	// allow the few the fake drops on purpose.
	dropped := map[string]bool{
		// user.created docs example: deprecated or legacy fields.
		"birthday": true, "gender": true, "profile_image_url": true,
		// user.deleted spec example: optional.
		"external_id": true,
	}
	types := fixtures.ClerkEventTypes()
	require.Len(t, types, 5)
	for _, typ := range types {
		var want map[string]any
		require.NoError(t, json.Unmarshal(fixtures.ClerkEvent(typ), &want))
		got := decode(t, clerkfake.MustBuild(typ, clerkfake.Options{Seed: 1}))
		for k := range want["data"].(map[string]any) {
			if !dropped[k] {
				require.Contains(t, got.Data, k, "%s: data.%s missing", typ, k)
			}
		}
		for k := range want {
			require.Contains(t, got.raw, k, "%s: envelope key %s missing", typ, k)
		}
		require.Equal(t, want["data"].(map[string]any)["object"], got.Data["object"], typ)
	}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	secret := clerkfake.NewSecret()
	wh, err := svix.NewWebhook(secret)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			!strings.HasPrefix(r.Header.Get("User-Agent"), "Svix-Webhooks/") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, `{"error":"bad signature"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"accepted","svix_id":"` + r.Header.Get("svix-id") + `"}`))
	}))
	t.Cleanup(srv.Close)

	body := clerkfake.MustBuild("user.created", clerkfake.Options{})
	h, err := clerkfake.Sign(secret, "", time.Now(), body)
	require.NoError(t, err)
	status, resp, err := clerkfake.Deliver(context.Background(), nil, srv.URL, h, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"status":"accepted","svix_id":"`+h.Get("svix-id")+`"}`, string(resp))

	// A wrong secret is answered, not an error of Deliver.
	bad, err := clerkfake.Sign(clerkfake.NewSecret(), "", time.Now(), body)
	require.NoError(t, err)
	status, resp, err = clerkfake.Deliver(context.Background(), srv.Client(), srv.URL, bad, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, string(resp), "bad signature")

	// A cancelled context is an error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = clerkfake.Deliver(ctx, nil, srv.URL, h, body)
	require.ErrorIs(t, err, context.Canceled)
}

func BenchmarkBuildUser(b *testing.B) {
	o := clerkfake.Options{}
	b.ReportAllocs()
	for b.Loop() {
		_ = clerkfake.MustBuild("user.updated", o)
	}
}

func BenchmarkBuildAndSign(b *testing.B) {
	secret := clerkfake.NewSecret()
	b.ReportAllocs()
	for b.Loop() {
		body := clerkfake.MustBuild("user.created", clerkfake.Options{})
		if _, err := clerkfake.Sign(secret, "", time.Time{}, body); err != nil {
			b.Fatal(err)
		}
	}
}
