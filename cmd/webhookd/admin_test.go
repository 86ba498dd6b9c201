package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// adminHarness is a running webhookd with its admin listener and a sealed
// ledger; adminNow is the console sessions' clock.
type adminHarness struct {
	*harness
	admin    string // http://host:port of the admin listener
	adminNow *time.Time
}

func withAdmin(now *time.Time) option {
	return func(c *AppConfig) {
		c.AdminAddr = "127.0.0.1:0"
		c.AdminNow = func() time.Time { return *now }
	}
}

func startAdmin(t *testing.T, opts ...option) *adminHarness {
	t.Helper()
	return startAdminOn(t, testdb.New(t), opts...)
}

func startAdminOn(t *testing.T, db *testdb.DB, opts ...option) *adminHarness {
	t.Helper()
	now := time.Now().UTC()
	h := startOn(t, db, append([]option{withSeal(sealKey), withAdmin(&now)}, opts...)...)
	return &adminHarness{harness: h, adminNow: &now, admin: "http://" + h.app.AdminAddr()}
}

// token runs `webhookd tokens create` and returns the token it printed.
func (h *adminHarness) token(name, role string) string {
	h.t.Helper()
	var out, errOut bytes.Buffer
	g := &Globals{Stdout: &out, Stderr: &errOut}
	cmd := TokensCreateCmd{Name: name, Role: role}
	cmd.URL = h.db.URL
	cmd.Actor = "test-operator"
	cmd.SigningKey = base64.StdEncoding.EncodeToString(sealKey.Seed())
	require.NoError(h.t, cmd.Run(context.Background(), g), errOut.String())
	token := strings.TrimSpace(out.String())
	require.Regexp(h.t, `^whdadm_[A-Za-z0-9_-]{43}$`, token)
	return token
}

type apiAnswer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// call makes an API request with token (none when "").
func (h *adminHarness) call(method, path, token string, body any) apiAnswer {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(h.t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.admin+path, r)
	require.NoError(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	a := apiAnswer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(h.t, json.Unmarshal(raw, &a.body), "%s", raw)
	}
	return a
}

var errorIDPattern = regexp.MustCompile(`^ERR_\d{13}_[0-9a-z]{9}$`)

// requireError checks an error answer: status, code, reason, and an error
// id that is on an admin_request_rejected log line with the same status.
func (h *adminHarness) requireError(a apiAnswer, status int, code, reason string) {
	h.t.Helper()
	require.Equal(h.t, status, a.status, "%s", a.raw)
	require.Equal(h.t, "application/json", a.header.Get("Content-Type"))
	require.Equal(h.t, code, a.body["error"], "%s", a.raw)
	require.Equal(h.t, reason, a.body["reason"], "%s", a.raw)
	id, _ := a.body["error_id"].(string)
	require.Regexp(h.t, errorIDPattern, id)
	require.NotEmpty(h.t, a.body["message"])
	line := h.logLine(id)
	require.Equal(h.t, "admin_request_rejected", line["msg"])
	require.Equal(h.t, float64(status), line["status"])
}

// user delivers a user.created made by clerkfake with seed and waits for
// the users projection; it returns the user's Clerk id.
func (h *adminHarness) user(seed int64, opts clerkfake.Options) string {
	h.t.Helper()
	opts.Seed, opts.Time = seed, h.now
	body := clerkfake.MustBuild("user.created", opts)
	a := h.deliver(fmt.Sprintf("msg_admin_%d", seed), body)
	require.Equal(h.t, http.StatusOK, a.status, "%v", a.body)
	var env struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(h.t, json.Unmarshal(body, &env))
	h.waitUser(env.Data.ID, func(string) bool { return true })
	return env.Data.ID
}

// waitUser waits until the users row of id has a role ok accepts.
func (h *adminHarness) waitUser(id string, ok func(role string) bool) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		var role string
		err := h.db.Pool.QueryRow(context.Background(), `SELECT role FROM users WHERE clerk_id = $1`, id).Scan(&role)
		return err == nil && ok(role)
	}, 20*time.Second, 10*time.Millisecond)
}

// accessEntries returns the data of every personal-data access entry in
// the ledger, oldest first.
func (h *adminHarness) accessEntries() []domain.PersonalDataAccess {
	h.t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `SELECT payload, source, signature FROM ledger_events WHERE event_type = $1 ORDER BY "offset"`, domain.EventPersonalDataAccessed)
	require.NoError(h.t, err)
	defer rows.Close()
	var out []domain.PersonalDataAccess
	for rows.Next() {
		var payload []byte
		var source, signature string
		require.NoError(h.t, rows.Scan(&payload, &source, &signature))
		require.Equal(h.t, domain.SourceWebhookd, source)
		require.True(h.t, strings.HasPrefix(signature, "ed25519:"), "access entries are signed: %q", signature)
		var env struct {
			Data domain.PersonalDataAccess `json:"data"`
		}
		require.NoError(h.t, json.Unmarshal(payload, &env))
		out = append(out, env.Data)
	}
	require.NoError(h.t, rows.Err())
	return out
}

func TestAdminAPIAnswersEveryStatus(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	h := startAdminOn(t, db, withDatabaseURL(viaProxy))
	admin := h.token("alice", "admin")
	viewer := h.token("victor", "viewer")
	revoked := h.token("rita", "viewer")
	var out bytes.Buffer
	rev := TokensRevokeCmd{Name: "rita"}
	rev.URL, rev.Actor, rev.SigningKey = db.URL, "test-operator", base64.StdEncoding.EncodeToString(sealKey.Seed())
	require.NoError(t, rev.Run(context.Background(), &Globals{Stdout: &out, Stderr: &out}))
	id := h.user(1, clerkfake.Options{Email: "dana.scully@clinic-example.org", FirstName: "Dana", LastName: "Scully"})

	// 200 and 201.
	a := h.call("GET", "/api/me", viewer, nil)
	require.Equal(t, 200, a.status)
	require.Equal(t, map[string]any{"name": "victor", "role": "viewer"}, a.body)
	a = h.call("GET", "/api/users?q=dana.SC", viewer, nil)
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Equal(t, []any{map[string]any{"clerk_id": id, "role": "USER", "practice_id": nil, "deleted_at": nil, "matched": []any{"email"}}}, a.body["users"])
	a = h.call("POST", "/api/users/search", viewer, map[string]string{"q": "scull"})
	require.Equal(t, 200, a.status)
	require.Len(t, a.body["users"], 1)
	require.NotContains(t, string(a.raw), "dana.scully", "search results hold no personal data")
	a = h.call("GET", "/api/users/"+id, viewer, nil)
	require.Equal(t, 200, a.status)
	require.Equal(t, "[REDACTED]", a.body["email"])
	require.Equal(t, "[REDACTED]", a.body["last_name"])
	require.Equal(t, false, a.body["revealed"])
	a = h.call("GET", "/api/users/"+id+"/timeline", viewer, nil)
	require.Equal(t, 200, a.status)
	require.NotContains(t, string(a.raw), "Scully")
	require.NotContains(t, string(a.raw), "dana.scully")
	a = h.call("POST", "/api/users/"+id+"/reveal", admin, map[string]any{"reason": "subject access request #12"})
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Equal(t, "dana.scully@clinic-example.org", a.body["user"].(map[string]any)["email"])
	a = h.call("POST", "/api/users/"+id+"/access", admin, map[string]any{"role": "ADMIN", "reason": "ticket 7"})
	require.Equal(t, 201, a.status, "%s", a.raw)
	require.Equal(t, "recorded", a.body["status"])

	// 401: no token, a malformed header, an unknown token, a revoked one.
	for name, tok := range map[string]string{"unknown": "whdadm_" + strings.Repeat("A", 43), "not ours": "sk_live_abc", "revoked": revoked} {
		a = h.call("GET", "/api/users/"+id, tok, nil)
		h.requireError(a, 401, "unauthorized", "invalid_token")
		require.Contains(t, a.header.Get("WWW-Authenticate"), "Bearer", name)
	}
	h.requireError(h.call("GET", "/api/users/"+id, "", nil), 401, "unauthorized", "no_token")
	req, _ := http.NewRequest("GET", h.admin+"/api/me", nil)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:"+admin)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode)

	// 403: a viewer on every admin action; nothing recorded for them.
	before := len(h.accessEntries())
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/users/" + id + "/reveal", `{"reason":"curious"}`},
		{"POST", "/api/users/" + id + "/access", `{"role":"ADMIN","reason":"promote myself"}`},
		{"POST", "/api/export", `{}`},
		{"POST", "/api/integrity/verify", ``},
		{"POST", "/api/projections/retry", `{"reason":"x"}`},
	} {
		h.requireError(h.call(c.method, c.path, viewer, c.body), 403, "forbidden", "admin_role_required")
	}
	require.Len(t, h.accessEntries(), before)

	// 400: bad input, each with its reason; nothing recorded.
	for _, c := range []struct{ method, path, body, reason string }{
		{"GET", "/api/users?q=a", "", "invalid_query"},
		{"GET", "/api/users", "", "invalid_query"},
		{"GET", "/api/users?q=" + strings.Repeat("x", 201), "", "invalid_query"},
		{"GET", "/api/users/someone@example.org", "", "invalid_clerk_id"},
		{"GET", "/api/users/" + id + "/timeline?limit=0", "", "invalid_limit"},
		{"GET", "/api/users/" + id + "/timeline?after=x", "", "invalid_after"},
		{"POST", "/api/users/search", `{"q":`, "invalid_json"},
		{"POST", "/api/users/search", `{"query":"dana"}`, "invalid_json"},
		{"POST", "/api/users/" + id + "/reveal", `{}`, "reason_required"},
		{"POST", "/api/users/" + id + "/reveal", `{"reason":"  "}`, "reason_required"},
		{"POST", "/api/users/" + id + "/access", `{"reason":"nothing to change"}`, "invalid_access_change"},
		{"POST", "/api/users/" + id + "/access", `{"role":"admin","reason":"lower case"}`, "invalid_access_change"},
		{"POST", "/api/users/" + id + "/access", `{"role":"ADMIN"}`, "reason_required"},
		{"POST", "/api/users/" + id + "/access", `{"practice":"org_nowhere","reason":"move"}`, "unknown_practice"},
		{"POST", "/api/users/" + id + "/access", `{"practice":"dana@example.org","reason":"move"}`, "invalid_practice_id"},
		{"POST", "/api/export", `{"from":"yesterday"}`, "invalid_from"},
		{"POST", "/api/export", `{"user":"dana.scully@clinic-example.org"}`, "invalid_clerk_id"},
		{"GET", "/api/deliveries?days=30", "", "invalid_days"},
	} {
		a := h.call(c.method, c.path, admin, c.body)
		h.requireError(a, 400, "invalid", c.reason)
	}
	a = h.call("POST", "/api/users/"+id+"/access", admin, `{"practice":"org_nowhere","reason":"move"}`)
	require.Equal(t, `practice "org_nowhere" is not in the practices table (no organization.created for it has been applied); check the id, or give --force to assign it anyway`, a.body["message"], "the message of webhookd users assign")

	// 404, 405, 413.
	h.requireError(h.call("GET", "/api/users/user_nobody", viewer, nil), 404, "not_found", "no_such_user")
	h.requireError(h.call("GET", "/api/users/user_nobody/timeline", viewer, nil), 404, "not_found", "no_such_user")
	h.requireError(h.call("POST", "/api/users/user_nobody/access", admin, `{"role":"ADMIN","reason":"ghost"}`), 404, "not_found", "no_such_user")
	h.requireError(h.call("GET", "/api/nothing", viewer, nil), 404, "not_found", "no_such_endpoint")
	h.requireError(h.call("DELETE", "/api/users/"+id, admin, nil), 405, "method_not_allowed", "method_not_allowed")
	h.requireError(h.call("GET", "/api/users/"+id+"/access", admin, nil), 405, "method_not_allowed", "method_not_allowed")
	h.requireError(h.call("POST", "/api/users/"+id+"/reveal", admin, `{"reason":"`+strings.Repeat("x", 70_000)+`"}`), 413, "too_large", "body_too_large")

	// 503: the database unreachable; nothing answered from it.
	proxy.Cut()
	a = h.call("GET", "/api/users/"+id, viewer, nil)
	h.requireError(a, 503, "unavailable", "database_unavailable")
	require.Equal(t, "5", a.header.Get("Retry-After"))
	proxy.Restore()
	require.Eventually(t, func() bool { return h.call("GET", "/api/me", viewer, nil).status == 200 }, 20*time.Second, 50*time.Millisecond)
}

func TestAdminReadsAreRecordedSealedAndVerified(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	viewer := h.token("victor", "viewer")
	id := h.user(2, clerkfake.Options{Email: "fox.mulder@clinic-example.org", FirstName: "Fox", LastName: "Mulder"})
	other := h.user(3, clerkfake.Options{Email: "walter.skinner@clinic-example.org", FirstName: "Walter", LastName: "Skinner"})

	require.Equal(t, 200, h.call("GET", "/api/users?q=Fox", viewer, nil).status)
	require.Equal(t, 200, h.call("GET", "/api/users?q=nobody-matches", viewer, nil).status)
	require.Equal(t, 200, h.call("GET", "/api/users/"+id, viewer, nil).status)
	require.Equal(t, 200, h.call("GET", "/api/users/"+id+"/timeline", viewer, nil).status)
	a := h.call("POST", "/api/users/"+id+"/reveal", admin, map[string]any{"reason": "court order 2026-17", "timeline": true})
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Contains(t, string(a.raw), "fox.mulder@clinic-example.org", "the revealed timeline holds the body in clear")

	got := h.accessEntries()
	require.Equal(t, []domain.PersonalDataAccess{
		{IDs: []string{id}, Actor: "victor", Role: "viewer", Action: "search", Fields: []string{"email", "name"}, Via: "api"},
		{ClerkID: id, Actor: "victor", Role: "viewer", Action: "open", Fields: []string{}, Via: "api"},
		{ClerkID: id, Actor: "victor", Role: "viewer", Action: "timeline", Fields: []string{}, Via: "api"},
		{ClerkID: id, Actor: "alice", Role: "admin", Action: "reveal", Fields: []string{"email", "first_name", "last_name", "name", "image_url"}, Reason: "court order 2026-17", Via: "api"},
		{ClerkID: id, Actor: "alice", Role: "admin", Action: "reveal_timeline", Fields: []string{"payload"}, Reason: "court order 2026-17", Via: "api"},
	}, got, "a search that finds nobody reads nobody's data")

	// The timeline shows the reads, oldest first, with actor and reason,
	// and, once sealed, their inclusion in the latest checkpoint.
	var total int64
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events`).Scan(&total))
	h.waitCheckpoint(int(total))
	a = h.call("GET", "/api/users/"+id+"/timeline", viewer, nil)
	entries := a.body["entries"].([]any)
	require.Len(t, entries, 6, "user.created, open, timeline, reveal, reveal_timeline, and this read (recorded before it is answered)")
	last := entries[5].(map[string]any)
	require.Equal(t, domain.EventPersonalDataAccessed, last["event_type"])
	require.Equal(t, "victor", last["actor"], "this read, recorded before it was answered (sealed or not yet, as the sealer goes)")
	first := entries[0].(map[string]any)
	require.Equal(t, "user.created", first["event_type"])
	require.Equal(t, "Clerk webhook", first["source_name"])
	require.Equal(t, true, first["in_checkpoint"])
	reveal := entries[3].(map[string]any)
	require.Equal(t, domain.EventPersonalDataAccessed, reveal["event_type"])
	require.Equal(t, "operator (webhookd)", reveal["source_name"])
	require.Equal(t, "alice", reveal["actor"])
	require.Equal(t, "court order 2026-17", reveal["reason"])
	require.Equal(t, true, reveal["in_checkpoint"])
	require.GreaterOrEqual(t, a.body["checkpoint_size"], float64(total), "the latest checkpoint (this read may be in it already)")
	// Someone else's timeline holds none of them: their user.created and
	// this read.
	a = h.call("GET", "/api/users/"+other+"/timeline", viewer, nil)
	require.Len(t, a.body["entries"].([]any), 2)

	// verify --db from the API: every entry, the reads included.
	a = h.call("POST", "/api/integrity/verify", admin, nil)
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Equal(t, true, a.body["ok"], "%s", a.raw)
	require.GreaterOrEqual(t, a.body["entries"], float64(total))
	a = h.call("GET", "/api/integrity", viewer, nil)
	require.Equal(t, true, a.body["last_verification"].(map[string]any)["ok"])
	require.Equal(t, "token:alice", a.body["last_verification"].(map[string]any)["actor"])
}

func TestAdminTimelinePages(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	viewer := h.token("victor", "viewer")
	id := h.user(4, clerkfake.Options{})
	for i := range 6 {
		body := clerkfake.MustBuild("user.updated", clerkfake.Options{Seed: 4, Time: h.now.Add(time.Duration(i+1) * time.Second)})
		require.Equal(t, 200, h.deliver(fmt.Sprintf("msg_page_%d", i), body).status)
	}
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		a := h.call("GET", "/api/users/"+id+"/timeline?limit=3"+after, viewer, nil)
		require.Equal(t, 200, a.status, "%s", a.raw)
		for _, e := range a.body["entries"].([]any) {
			seen = append(seen, e.(map[string]any)["svix_id"].(string))
		}
		next, ok := a.body["next"].(float64)
		if !ok {
			break
		}
		after = fmt.Sprintf("&after=%d", int64(next))
	}
	// user.created, six user.updated, then the reads of the pages before
	// the last one (each read is recorded before it is answered).
	require.Equal(t, "msg_admin_4", seen[0])
	for i := range 6 {
		require.Equal(t, fmt.Sprintf("msg_page_%d", i), seen[i+1])
	}
	require.Len(t, seen, 7+4, "four page reads precede the last page: %v", seen)
	unique := map[string]bool{}
	for _, s := range seen {
		require.False(t, unique[s], "no entry on two pages")
		unique[s] = true
	}
}

func TestAdminAccessChangeIsTheUsersAssignEvent(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	id := h.user(5, clerkfake.Options{})
	org := clerkfake.MustBuild("organization.created", clerkfake.Options{Seed: 5, Time: h.now})
	require.Equal(t, 200, h.deliver("msg_org_5", org).status)
	var env struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(org, &env))
	require.Eventually(t, func() bool {
		var n int
		_ = h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM practices WHERE clerk_org_id = $1`, env.Data.ID).Scan(&n)
		return n == 1
	}, 20*time.Second, 10*time.Millisecond)

	a := h.call("POST", "/api/users/"+id+"/access", admin, map[string]any{"role": "PRACTICE_ADMIN", "practice": env.Data.ID, "reason": "new clinic lead"})
	require.Equal(t, 201, a.status, "%s", a.raw)
	h.waitUser(id, func(role string) bool { return role == "PRACTICE_ADMIN" })
	var practice string
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT practice_id FROM users WHERE clerk_id = $1`, id).Scan(&practice))
	require.Equal(t, env.Data.ID, practice)

	store, err := eventstore.New(h.db.Pool, nil)
	require.NoError(t, err)
	defer store.Close()
	e, err := store.Get(context.Background(), a.body["svix_id"].(string))
	require.NoError(t, err)
	require.Equal(t, domain.EventUserAccessChanged, e.EventType)
	parsed, err := domain.ParseEnvelope(e.Payload)
	require.NoError(t, err)
	change, err := domain.ParseAccessChange(parsed.Data)
	require.NoError(t, err)
	require.Equal(t, "token:alice", change.Actor)
	require.Equal(t, "new clinic lead", change.Reason)
	origin, err := seal.NewOriginVerifier(nil, sealKey.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.NoError(t, origin.Verify(e), "signed like users assign")

	// The timeline shows who changed it and why.
	a = h.call("GET", "/api/users/"+id+"/timeline", admin, nil)
	var found bool
	for _, x := range a.body["entries"].([]any) {
		m := x.(map[string]any)
		if m["event_type"] == domain.EventUserAccessChanged {
			found = true
			require.Equal(t, "token:alice", m["actor"])
			require.Equal(t, "new clinic lead", m["reason"])
		}
	}
	require.True(t, found)
}

func TestAdminExportIsTheExportBundleAndVerifiesOffline(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	id := h.user(6, clerkfake.Options{})
	h.user(7, clerkfake.Options{})
	var total int64
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events`).Scan(&total))
	h.waitCheckpoint(int(total))

	a := h.call("POST", "/api/export", admin, map[string]string{"user": id})
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Equal(t, "application/gzip", a.header.Get("Content-Type"))
	require.Regexp(t, `^attachment; filename="webhookd-export-[0-9a-f-]{36}\.tar\.gz"$`, a.header.Get("Content-Disposition"))
	path := filepath.Join(t.TempDir(), "export.tar.gz")
	require.NoError(t, os.WriteFile(path, a.raw, 0o600))
	r, err := bundle.VerifyBundle(context.Background(), path, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{sealKey.Public().(ed25519.PublicKey)}})
	require.NoError(t, err)
	require.NoError(t, r.Err())
	// The user's user.created, and the export's own read of it when the
	// sealer covered that entry before the export read the checkpoint.
	require.Contains(t, []int{1, 2}, r.Entries, "only the user's entries")
	require.True(t, r.ManifestSigned)

	// Recorded: the read (with the user) and the export event itself.
	got := h.accessEntries()
	require.Equal(t, "export", got[len(got)-1].Action)
	require.Equal(t, id, got[len(got)-1].ClerkID)
	var exports int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events WHERE event_type = $1`, bundle.EventExportCreated).Scan(&exports))
	require.Equal(t, 1, exports)
}

func TestTokensCommands(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	token := h.token("ops@clinic", "admin")
	key := base64.StdEncoding.EncodeToString(sealKey.Seed())
	run := func(cmd interface {
		Run(context.Context, *Globals) error
	}) (string, error) {
		var out bytes.Buffer
		err := cmd.Run(context.Background(), &Globals{Stdout: &out, Stderr: io.Discard})
		return out.String(), err
	}
	create := &TokensCreateCmd{Name: "ops@clinic", Role: "viewer"}
	create.URL, create.Actor, create.SigningKey = h.db.URL, "test-operator", key
	_, err := run(create)
	require.EqualError(t, err, `a token called "ops@clinic" exists already (revoked tokens keep their name); choose another name`)
	create.Name = "has space"
	_, err = run(create)
	require.EqualError(t, err, `a token name is 1 to 64 letters, digits, '.', '_', '-' or '@'`)

	list := &TokensListCmd{JSON: true}
	list.URL = h.db.URL
	out, err := run(list)
	require.NoError(t, err)
	require.Contains(t, out, `"name":"ops@clinic","role":"admin"`)
	require.NotContains(t, out, token)

	revoke := &TokensRevokeCmd{Name: "ops@clinic"}
	revoke.URL, revoke.Actor, revoke.SigningKey = h.db.URL, "test-operator", key
	out, err = run(revoke)
	require.NoError(t, err)
	require.Equal(t, "token \"ops@clinic\" revoked (recorded in the ledger); its console sessions are ended\n", out)
	_, err = run(revoke)
	require.ErrorContains(t, err, `token "ops@clinic" was revoked at `)
	revoke.Name = "nobody"
	_, err = run(revoke)
	require.EqualError(t, err, `no token called "nobody"`)
	h.requireError(h.call("GET", "/api/me", token, nil), 401, "unauthorized", "invalid_token")

	// The ledger holds both changes, signed, with a fingerprint of the
	// token and never the token or its hash.
	rows, err := h.db.Pool.Query(context.Background(), `SELECT event_type, payload, signature FROM ledger_events WHERE event_type LIKE 'webhookd.token.%' ORDER BY "offset"`)
	require.NoError(t, err)
	var types []string
	for rows.Next() {
		var typ, sig string
		var payload []byte
		require.NoError(t, rows.Scan(&typ, &payload, &sig))
		types = append(types, typ)
		require.NotContains(t, string(payload), token)
		require.NotContains(t, string(payload), strings.TrimPrefix(token, "whdadm_"))
		require.Contains(t, string(payload), `"actor":"test-operator"`)
		require.True(t, strings.HasPrefix(sig, "ed25519:"))
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{domain.EventTokenCreated, domain.EventTokenRevoked}, types)
	var stored []byte
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT token_hash FROM admin_tokens WHERE name = 'ops@clinic'`).Scan(&stored))
	require.NotContains(t, string(stored), token)
	require.Len(t, stored, 32)
}

// A verification run while the sealer keeps signing checkpoints reports no
// false failure: the checkpoints are read before the rows they cover.
func TestAdminVerifyOnABusyLedger(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	h.deliverN(0, 3)
	h.waitCheckpoint(4) // the token entry and three deliveries
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 3; i < 60; i++ {
			body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: int64(i), Time: h.now})
			if a := h.deliver(fmt.Sprintf("msg_busy_%03d", i), body); a.status != 200 {
				t.Errorf("delivery %d: %d", i, a.status)
				return
			}
		}
	}()
	runs := 0
	for busy := true; busy || runs < 3; runs++ {
		select {
		case <-done:
			busy = false
		default:
		}
		a := h.call("POST", "/api/integrity/verify", admin, nil)
		require.Equal(t, 200, a.status, "%s", a.raw)
		require.Equal(t, true, a.body["ok"], "run %d: %s", runs, a.raw)
	}
}

// Values no btree row could hold (Clerk does not bound them) are projected
// and found by search: the search indexes hold their first 200 characters.
func TestAdminSearchFindsUsersWithHugeValues(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	viewer := h.token("victor", "viewer")
	long := strings.Repeat("ü", 3000)
	id := h.user(12, clerkfake.Options{Email: "zed." + long + "@clinic-example.org", FirstName: "Zed" + long, LastName: long + "Quill"})
	for _, q := range []string{"zed.ü", "ZED" + strings.Repeat("Ü", 197), "zed." + strings.Repeat("ü", 196)} {
		a := h.call("POST", "/api/users/search", viewer, map[string]string{"q": q})
		require.Equal(t, 200, a.status, "%s", a.raw)
		users := a.body["users"].([]any)
		require.Len(t, users, 1, "query of %d characters", len([]rune(q)))
		require.Equal(t, id, users[0].(map[string]any)["clerk_id"])
	}
	a := h.call("POST", "/api/users/search", viewer, map[string]string{"q": "zed." + strings.Repeat("ü", 197)})
	h.requireError(a, 400, "invalid", "invalid_query")
}

// The retry action is `webhookd projections retry`: the entry is applied
// again and the retry recorded in the ledger, signed, with the token as
// actor.
func TestAdminRetriesProjectionFailures(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	viewer := h.token("victor", "viewer")
	ctx := context.Background()
	_, err := h.db.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_membership() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'membership refused by the test'; END $$;
		CREATE TRIGGER refuse_membership BEFORE INSERT OR UPDATE ON memberships
			FOR EACH ROW WHEN (NEW.clerk_membership_id = 'orgmem_refused') EXECUTE FUNCTION refuse_membership();`)
	require.NoError(t, err)
	body := clerkfake.MustBuild("organizationMembership.created", clerkfake.Options{ID: "orgmem_refused", Seed: 13, Time: h.now})
	require.Equal(t, 200, h.deliver("msg_refused", body).status)
	var failures []any
	require.Eventually(t, func() bool {
		a := h.call("GET", "/api/integrity", viewer, nil)
		failures, _ = a.body["projection_failures"].([]any)
		return len(failures) == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, "memberships", failures[0].(map[string]any)["projection"])

	h.requireError(h.call("POST", "/api/projections/retry", admin, map[string]any{"projection": "memberships"}), 400, "invalid", "reason_required")
	h.requireError(h.call("POST", "/api/projections/retry", admin, map[string]any{"projection": "nothing", "reason": "fix"}), 400, "invalid", "invalid_projection")
	_, err = h.db.Pool.Exec(ctx, `DROP TRIGGER refuse_membership ON memberships`)
	require.NoError(t, err)
	a := h.call("POST", "/api/projections/retry", admin, map[string]any{"projection": "memberships", "reason": "trigger removed"})
	require.Equal(t, 200, a.status, "%s", a.raw)
	results := a.body["results"].([]any)
	require.Len(t, results, 1)
	require.Equal(t, "applied", results[0].(map[string]any)["outcome"])
	var n int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM memberships WHERE clerk_membership_id = 'orgmem_refused'`).Scan(&n))
	require.Equal(t, 1, n)
	require.Empty(t, h.call("GET", "/api/integrity", viewer, nil).body["projection_failures"])
	h.requireError(h.call("POST", "/api/projections/retry", admin, map[string]any{"reason": "again"}), 404, "not_found", "no_failures")

	var payload []byte
	var signature string
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT payload, signature FROM ledger_events WHERE event_type = $1`, domain.EventProjectionRetried).Scan(&payload, &signature))
	require.Contains(t, string(payload), `"actor":"token:alice"`)
	require.Contains(t, string(payload), `"reason":"trigger removed"`)
	require.True(t, strings.HasPrefix(signature, "ed25519:"))
}

// The chart's numbers: appended deliveries per hour by type from the
// ledger, rejected ones from the process's own count.
func TestAdminDeliveriesPerHour(t *testing.T) {
	t.Parallel()
	// One clock for the deliveries, the rejections and the chart, so an
	// hour that ends during the test cannot split them.
	var h *adminHarness
	h = startAdmin(t, withConfig(func(c *AppConfig) { c.AdminNow = func() time.Time { return h.now } }))
	viewer := h.token("victor", "viewer")
	h.deliverN(0, 3)
	org := clerkfake.MustBuild("organization.created", clerkfake.Options{Seed: 14, Time: h.now})
	require.Equal(t, 200, h.deliver("msg_chart_org", org).status)
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 15, Time: h.now})
	for i := range 2 {
		require.Equal(t, 401, h.post(h.url, signed(t, otherSecret, fmt.Sprintf("msg_forged_%d", i), h.now, body), body).status)
	}
	a := h.call("GET", "/api/deliveries?days=1", viewer, nil)
	require.Equal(t, 200, a.status, "%s", a.raw)
	require.Equal(t, map[string]any{"user.created": 3.0, "organization.created": 1.0}, a.body["totals"])
	require.Equal(t, []any{"user.created", "organization.created"}, a.body["types"])
	require.Equal(t, 2.0, a.body["rejected"])
	hours := a.body["hours"].([]any)
	require.Len(t, hours, 24)
	last := hours[23].(map[string]any)
	require.Equal(t, h.now.Truncate(time.Hour).Format(time.RFC3339), last["hour"], "the current hour is the last")
	require.Equal(t, map[string]any{"user.created": 3.0, "organization.created": 1.0}, last["by_type"])
	require.Equal(t, 2.0, last["rejected"])
}

// TestAdminTimelineNamesReconciliationEntries: what `webhookd reconcile`
// appended shows as a Clerk API entry, and its soft delete says who and
// why, as an operator's access change does.
func TestAdminTimelineNamesReconciliationEntries(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	viewer := h.token("victor", "viewer")
	id := h.user(7, clerkfake.Options{})
	store, err := eventstore.New(h.db.Pool, nil)
	require.NoError(t, err)
	defer store.Close()
	snapshot, err := clerkfake.APIUser(clerkfake.Options{Seed: 7, Time: h.now.Add(time.Minute)})
	require.NoError(t, err)
	snap, _, err := domain.NewUserSnapshotEntry(snapshot, time.Now())
	require.NoError(t, err)
	gone, err := domain.NewUserNotFoundEntry(id, time.Now())
	require.NoError(t, err)
	for _, e := range []*domain.LedgerEntry{&snap, &gone} {
		seal.SignInternalEntry(sealKey, e)
		_, err := store.Append(context.Background(), *e)
		require.NoError(t, err)
	}

	a := h.call("GET", "/api/users/"+id+"/timeline", viewer, nil)
	require.Equal(t, 200, a.status, "%s", a.raw)
	byID := map[string]map[string]any{}
	for _, e := range a.body["entries"].([]any) {
		byID[e.(map[string]any)["svix_id"].(string)] = e.(map[string]any)
	}
	require.Contains(t, byID, snap.SvixID)
	require.Equal(t, "clerk-api", byID[snap.SvixID]["source"])
	require.Equal(t, "Clerk API snapshot", byID[snap.SvixID]["source_name"])
	require.Contains(t, byID, gone.SvixID)
	require.Equal(t, "Clerk API snapshot", byID[gone.SvixID]["source_name"])
	require.Equal(t, "webhookd reconcile", byID[gone.SvixID]["actor"])
	require.Equal(t, domain.UserNotFoundReason, byID[gone.SvixID]["reason"])
	require.Equal(t, "Clerk webhook", byID["msg_admin_7"]["source_name"])
	_, hasActor := byID["msg_admin_7"]["actor"]
	require.False(t, hasActor && byID["msg_admin_7"]["actor"] != "", "a webhook has no actor")
}
