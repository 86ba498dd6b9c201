package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// personal collects the personal data a test sends, to look for it in
// the logs afterwards.
type personal map[string]bool

// collect adds every string under a key that names personal data, at any
// depth of a JSON body.
func (p personal) collect(v any, key string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p.collect(x, k)
		}
	case []any:
		for _, x := range v {
			p.collect(x, key)
		}
	case string:
		switch key {
		case "email_address", "phone_number", "first_name", "last_name", "username", "name", "email", "phone",
			"nickname", "given_name", "family_name", "emailAddress", "full_name":
			// A value with neither a letter nor a phone number's digits
			// (clerkfake's username for a name without Latin letters is
			// like "_59") names nobody, and would match error ids at
			// random.
			if len(v) >= 3 && (strings.IndexFunc(v, unicode.IsLetter) >= 0 || digits(v) >= 5) {
				p[v] = true
			}
		}
	}
}

func digits(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

func TestNoPersonalDataInLogs(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	logs := &syncBuffer{}
	logger, err := redact.NewLogger(logs, redact.FormatJSON, slog.LevelDebug)
	require.NoError(t, err)
	h := startOn(t, db, withDatabaseURL(viaProxy), withConfig(func(c *AppConfig) {
		c.Logger = logger
		// Every request below is one source; the limiter must not hide
		// any path.
		c.FailedAuthBurst = 1_000_000
	}))
	pii := personal{}

	names := [][2]string{
		{"Zoë", "Ångström"}, {"Siobhán", "Ó Súilleabháin"}, {"José-María", "Núñez de Balboa"},
		{"Łukasz", "Wróblewski"}, {"Nguyễn", "Thị Minh Khai"}, {"山田", "太郎"}, {"Олена", "Шевченко"},
		{"D'Arcy", "O'Brien"}, {"Anaïs", "Lucović"}, {"Mary Ann", "St. John-Smythe"}, {"محمد", "العلي"},
	}
	var bodies [][]byte
	for i, typ := range clerkfake.Types {
		n := names[i%len(names)]
		email := fmt.Sprintf("patient.%d+%s@clinic-example.org", i, strings.ToLower(strings.ReplaceAll(typ, ".", "-")))
		body := clerkfake.MustBuild(typ, clerkfake.Options{Seed: int64(i + 1), Email: email, FirstName: n[0], LastName: n[1]})
		var v any
		require.NoError(t, json.Unmarshal(body, &v))
		pii.collect(v, "")
		bodies = append(bodies, body)
	}
	for _, n := range names {
		pii[n[0]], pii[n[1]] = true, true
	}

	// Hand-made bodies: personal data where no schema puts it.
	adversarial := []string{
		`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_2x","notes":"call Gráinne Mhaol on +1 (555) 010-4477 or grainne.mhaol@patients-example.net","unsafe_metadata":{"diagnosis":"type 2 diabetes","next_of_kin":{"name":"Bartholomew Quince","phone":"+44 20 7946 0958"}}}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_3y","private_metadata":{"contacts":[{"e":"ximena.quispe@andes-example.pe"},{"p":"+51 1 555 0199"}]},"labels":["Ximena Quispe Huamán"]}}`,
	}
	pii.add("Gráinne Mhaol", "+1 (555) 010-4477", "grainne.mhaol@patients-example.net", "Bartholomew Quince", "+44 20 7946 0958",
		"ximena.quispe@andes-example.pe", "+51 1 555 0199", "Ximena Quispe Huamán")
	for _, b := range adversarial {
		bodies = append(bodies, []byte(b))
	}

	// The database down: append_failed carries the driver's error. This
	// comes first, while the projection has nothing in hand: a cut in the
	// middle of its batch leaves it retrying on the dead connection (see
	// the report on projections.Runner), which is not what this test is
	// about.
	proxy.Cut()
	for i, b := range bodies[:5] {
		a := h.deliver(fmt.Sprintf("msg_pii_down_%d", i), b)
		require.Equal(t, http.StatusServiceUnavailable, a.status)
	}
	proxy.Restore()

	// Paths: accepted, duplicate, bad signature.
	for i, body := range bodies {
		id := fmt.Sprintf("msg_pii_%d", i)
		require.Equal(t, http.StatusOK, h.deliver(id, body).status, "body %d", i)
		require.Equal(t, "duplicate", h.deliver(id, body).body["status"])
		require.Equal(t, http.StatusUnauthorized, h.post(h.url, signed(t, otherSecret, id+"_forged", h.now, body), body).status)
	}

	// Invalid bodies, signed: broken JSON holding an email, wrong types,
	// a type that is itself an email, an id that is one.
	invalid := []string{
		`{"object":"event","type":"user.created","data":{"email_addresses":[{"email_address":"broken.json@clinic-example.org"`,
		`{"object":"event","type":"bertha.vanation@clinic-example.org","instance_id":"ins_1","timestamp":1,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":"Bertha Vanation +1 555 010 9988","data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":{"id":{"first_name":"Bertha","email":"bertha.vanation@clinic-example.org"}}}`,
		`["bertha.vanation@clinic-example.org", "+1 555 010 9988"]`,
		"bertha.vanation@clinic-example.org \x00\xff not json",
	}
	pii.add("broken.json@clinic-example.org", "bertha.vanation@clinic-example.org", "Bertha Vanation", "+1 555 010 9988")
	for i, b := range invalid {
		a := h.deliver(fmt.Sprintf("msg_pii_invalid_%d", i), []byte(b))
		require.Equal(t, http.StatusBadRequest, a.status, "invalid body %d: %v", i, a.body)
	}
	// A signed event whose ids carry personal data (data.id is logged as
	// clerk_id).
	oddIDs := `{"object":"event","type":"user.created","instance_id":"ins_olive.oyl@clinic-example.org","timestamp":1654012591835,"data":{"id":"user_olive.oyl@clinic-example.org"}}`
	pii.add("olive.oyl@clinic-example.org")
	require.Equal(t, http.StatusOK, h.deliver("msg_pii_oddid", []byte(oddIDs)).status)

	// Personal data in headers: svix-id (printable ASCII, so a valid id),
	// svix-timestamp, svix-signature, User-Agent, X-Forwarded-For.
	body := bodies[0]
	hdr := signed(t, testSecret, "ignatius.reilly@clinic-example.org", h.now, body)
	hdr.Set("User-Agent", "Ignatius Reilly <ignatius.reilly@clinic-example.org>")
	hdr.Set("X-Forwarded-For", "ignatius.reilly@clinic-example.org")
	require.Equal(t, http.StatusOK, h.post(h.url, hdr, body).status)
	pii.add("ignatius.reilly@clinic-example.org", "Ignatius Reilly")
	for _, set := range []func(http.Header){
		func(x http.Header) { x.Set("svix-timestamp", "+1 555 010 3344") },
		func(x http.Header) { x.Set("svix-signature", "v1,myra.breckinridge@clinic-example.org") },
		func(x http.Header) { x.Set("svix-id", "Myra Breckinridge +1 555 010 3344") },
		func(x http.Header) {
			x.Del("svix-signature")
			x.Set("webhook-id", "myra.breckinridge@clinic-example.org")
		},
	} {
		x := signed(t, testSecret, "msg_hdr_pii", h.now, body)
		set(x)
		require.Contains(t, []int{400, 401}, h.post(h.url, x, body).status)
	}
	pii.add("+1 555 010 3344", "myra.breckinridge@clinic-example.org", "Myra Breckinridge")

	// Phone numbers and emails glued to ids (svix-id, webhook-id, data.id),
	// which the redactor keeps visible otherwise: accepted, duplicate and
	// forged deliveries all log the id.
	for i, id := range []string{"msg_+14155550121", "msg_+1 415 555 0122", "msg_+1-415-555-0123", "msg_415-555-0124",
		"msg_415.555.0125", "msg_14155550126", "msg_+14155550127_retry", "msg_olga.pike@clinic-example.org"} {
		if strings.Contains(id, " ") {
			// Not a valid svix-id: refused before the signature.
			require.Equal(t, http.StatusBadRequest, h.post(h.url, signed(t, testSecret, id, h.now, body), body).status, "id %q", id)
		} else {
			require.Equal(t, http.StatusOK, h.post(h.url, signed(t, testSecret, id, h.now, body), body).status, "id %q", id)
			require.Equal(t, "duplicate", h.post(h.url, signed(t, testSecret, id, h.now, body), body).body["status"])
			require.Equal(t, http.StatusUnauthorized, h.post(h.url, signed(t, otherSecret, id, h.now, body), body).status)
		}
		x := signed(t, otherSecret, fmt.Sprintf("msg_+1415555013%d", i), h.now, body)
		for _, k := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
			x.Set("webhook"+strings.TrimPrefix(k, "svix"), x.Get(k))
			x.Del(k)
		}
		require.Equal(t, http.StatusUnauthorized, h.post(h.url, x, body).status)
		pii.add(fmt.Sprintf("1415555013%d", i))
	}
	pii.add("14155550121", "415 555 0122", "415-555-0123", "415-555-0124", "415.555.0125", "14155550126", "14155550127", "olga.pike@clinic-example.org")
	phoneID := `{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_+447700900141"}}`
	require.Equal(t, http.StatusOK, h.deliver("msg_pii_phoneid", []byte(phoneID)).status)
	pii.add("447700900141")

	// Oversize, with personal data all through it.
	big := []byte(`{"object":"event","type":"user.created","data":{"email_address":"` + strings.Repeat("oversize.olga@clinic-example.org ", 40_000) + `"}}`)
	pii.add("oversize.olga@clinic-example.org")
	require.Equal(t, http.StatusRequestEntityTooLarge, h.deliver("msg_pii_big", big).status)

	// Let the users projection apply everything (its debug lines are part
	// of the output checked).
	require.Eventually(t, func() bool {
		var n int64
		err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n)
		return err == nil && n > 0 && h.get("/readyz").status == http.StatusOK &&
			scrape(t, h).value(`webhookd_projection_lag_events{projection="users"}`) == 0
	}, 20*time.Second, 20*time.Millisecond, "readyz: %v", h.get("/readyz").body)

	out := logs.String()
	require.Contains(t, out, `"msg":"projection_applied"`, "the projection's lines are in the output")
	require.Contains(t, out, `"msg":"append_failed"`)
	require.Greater(t, len(pii), 90, "the test sends a good amount of personal data")
	for s := range pii {
		require.NotContains(t, out, s, "personal data in the logs")
		if b, err := json.Marshal(s); err == nil {
			// As JSON escapes it (non-ASCII stays as is, but quotes
			// and the like do not).
			require.NotContains(t, out, strings.Trim(string(b), `"`), "personal data in the logs")
		}
	}
}

func (p personal) add(s ...string) {
	for _, x := range s {
		p[x] = true
	}
}

// Reconciliation reads whole user objects from Clerk's Backend API and
// Clerk's error answers quote what was sent: none of it, nor the secret
// key, reaches the logs, the errors or the summary.
func TestNoPersonalDataInReconcileLogs(t *testing.T) {
	t.Parallel()
	h := start(t)
	pii := personal{}
	// A user webhookd knows that Clerk's listing no longer has: the
	// reconciliation asks Clerk for it by id.
	absent := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 77, Email: "absent.abigail@clinic-example.org", FirstName: "Abigail", LastName: "Absentee"})
	pii.add("absent.abigail@clinic-example.org", "Abigail", "Absentee")
	require.Equal(t, "accepted", h.deliver("msg_pii_absent", absent).body["status"])
	env, err := domainEnvelope(absent)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(usersTable(t, h.db)) == 1 }, 20*time.Second, 10*time.Millisecond)

	const key = "sk_test_pii_secret_key_do_not_log"
	api := clerkfake.NewAPI(key)
	names := [][2]string{{"Zoë", "Ångström"}, {"Siobhán", "Ó Súilleabháin"}, {"山田", "太郎"}, {"D'Arcy", "O'Brien"}, {"محمد", "العلي"}}
	for i, n := range names {
		email := fmt.Sprintf("patient.%d@clinic-example.org", i)
		raw, err := clerkfake.APIUser(clerkfake.Options{Seed: int64(i + 1), Email: email, FirstName: n[0], LastName: n[1]})
		require.NoError(t, err)
		require.NoError(t, api.Put(raw))
		var v any
		require.NoError(t, json.Unmarshal(raw, &v))
		pii.collect(v, "")
	}
	// A user object that does not parse, full of personal data.
	unreadable := `{"id":"user_unreadable","first_name":{"given":"Ulrich Unreadable"},"email_addresses":"ulrich.unreadable@clinic-example.org","updated_at":"+1 555 010 7788"}`
	pii.add("Ulrich Unreadable", "ulrich.unreadable@clinic-example.org", "+1 555 010 7788")
	// Clerk's error answers quote personal data in their messages.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/users/user_") {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"errors":[{"code":"form_identifier_exists","message":"erin.error@clinic-example.org is taken","long_message":"Erin Errorson +1 555 010 6655"}]}`))
			return
		}
		if r.URL.Path == "/v1/users" && r.URL.Query().Get("offset") == "0" && unreadable != "" {
			_, _ = w.Write([]byte(`[` + unreadable + `]`))
			return
		}
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	pii.add("erin.error@clinic-example.org", "Erin Errorson", "+1 555 010 6655", key)

	var out, logs strings.Builder
	for _, dry := range []bool{true, false, false} {
		g, stdout := testGlobals()
		stderr := &syncBuffer{}
		g.Stderr, g.LogLevel = stderr, "debug"
		cmd := ReconcileCmd{Database: Database{URL: h.db.URL}, ClerkAPI: ClerkAPI{SecretKey: key, APIURL: srv.URL, Budget: -1}, DryRun: dry}
		err := cmd.Run(context.Background(), g)
		require.ErrorContains(t, err, "reconciliation incomplete")
		out.WriteString(stdout.String() + err.Error())
		logs.WriteString(stderr.String())
		unreadable = "" // the next runs list completely and check the absent user
	}
	all := out.String() + logs.String()
	require.Contains(t, all, `"msg":"reconcile_user_unreadable"`)
	require.Contains(t, all, `"msg":"reconcile_check_failed","clerk_id":"`+env)
	require.Contains(t, all, `"cause":"GET /v1/users/{id} answered 422 (form_identifier_exists)"`)
	require.Contains(t, all, `"msg":"reconcile_incomplete"`)
	for s := range pii {
		require.NotContains(t, all, s, "personal data or the key in reconcile's output")
		if b, err := json.Marshal(s); err == nil {
			require.NotContains(t, all, strings.Trim(string(b), `"`), "personal data in reconcile's output")
		}
	}
}

// domainEnvelope returns the subject id of a Clerk event body.
func domainEnvelope(body []byte) (string, error) {
	env, err := domain.ParseEnvelope(body)
	return env.SubjectID, err
}

// TestNoPersonalDataInAdminLogs sends personal data to every admin path
// (query strings, paths, bodies, headers, forms, answered 200 and every
// error status) and looks for it in the logs.
func TestNoPersonalDataInAdminLogs(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	proxy, viaProxy := testdb.NewProxy(t, db)
	logs := &syncBuffer{}
	logger, err := redact.NewLogger(logs, redact.FormatJSON, slog.LevelDebug)
	require.NoError(t, err)
	h := startAdminOn(t, db, withDatabaseURL(viaProxy), withConfig(func(c *AppConfig) { c.Logger = logger }))
	admin := h.token("alice", "admin")
	viewer := h.token("victor", "viewer")
	pii := personal{}
	pii.add("gwendolyn.pryce@clinic-example.org", "Gwendolyn", "Pryce", "+1 555 010 7788", "Tobias Quarrington", "tobias.q@clinic-example.org")
	id := h.user(10, clerkfake.Options{Email: "gwendolyn.pryce@clinic-example.org", FirstName: "Gwendolyn", LastName: "Pryce"})

	calls := []struct {
		method, path, token, body string
	}{
		{"GET", "/api/users?q=gwendolyn.pryce@clinic-example.org", viewer, ""},
		{"GET", "/api/users?q=Pryce", viewer, ""},
		{"GET", "/api/users?q=" + url.QueryEscape("Tobias Quarrington\x01"), viewer, ""},
		{"POST", "/api/users/search", viewer, `{"q":"Gwendolyn"}`},
		{"POST", "/api/users/search", viewer, `{"q":"tobias.q@clinic-example.org","extra":"+1 555 010 7788"}`},
		{"GET", "/api/users/gwendolyn.pryce@clinic-example.org", viewer, ""},
		{"GET", "/api/users/" + url.PathEscape("Tobias Quarrington") + "/timeline", viewer, ""},
		{"GET", "/api/users/user_tobias.q@clinic-example.org", viewer, ""},
		{"GET", "/api/users/" + id + "/timeline?after=Pryce", viewer, ""},
		{"GET", "/api/users/" + id, viewer, ""},
		{"GET", "/api/users/" + id + "/timeline", viewer, ""},
		{"POST", "/api/users/" + id + "/reveal", viewer, `{"reason":"Tobias Quarrington asked"}`},
		{"POST", "/api/users/" + id + "/reveal", admin, `{"reason":"+1 555 010 7788","timeline":true}`},
		{"POST", "/api/users/" + id + "/reveal", admin, `{"reason":"` + strings.Repeat("tobias.q@clinic-example.org ", 3000) + `"}`},
		{"POST", "/api/users/" + id + "/access", admin, `{"role":"Tobias Quarrington","reason":"x"}`},
		{"POST", "/api/users/" + id + "/access", admin, `{"practice":"tobias.q@clinic-example.org","reason":"move"}`},
		{"POST", "/api/export", admin, `{"user":"gwendolyn.pryce@clinic-example.org","from":"Gwendolyn"}`},
		{"GET", "/api/tobias.q@clinic-example.org", viewer, ""},
		{"DELETE", "/api/users/" + id + "?q=Pryce", viewer, ""},
		{"GET", "/api/me", "whdadm_tobias.q@clinic-example.org", ""},
		{"GET", "/api/me", "Tobias Quarrington", ""},
	}
	for _, c := range calls {
		a := h.call(c.method, c.path, c.token, c.body)
		require.NotContains(t, []int{0, 500}, a.status, "%s %s", c.method, c.path)
		for s := range pii {
			if a.status >= 400 {
				require.NotContains(t, string(a.raw), s, "an error answer holds personal data: %s %s", c.method, c.path)
			}
		}
	}
	// The console: sign in, search and reveal with personal data in the
	// forms, and a wrong token that is an email.
	b := h.browser()
	p := b.do("GET", "/signin", nil, nil)
	b.do("POST", "/signin", url.Values{"csrf_token": {csrfOf(t, p.body)}, "token": {"tobias.q@clinic-example.org"}}, nil)
	home := b.signIn(admin)
	csrf := csrfOf(t, home.body)
	b.do("POST", "/search", url.Values{"q": {"gwendolyn.pryce@clinic-example.org"}, "csrf_token": {csrf}}, nil)
	b.do("POST", "/search", url.Values{"q": {"Tobias Quarrington"}}, nil)
	b.do("POST", "/users/"+id+"/reveal", url.Values{"reason": {"Tobias Quarrington asked"}, "csrf_token": {csrf}}, nil)
	b.do("GET", "/users/gwendolyn.pryce@clinic-example.org", nil, nil)
	b.do("POST", "/export", url.Values{"user": {"tobias.q@clinic-example.org"}, "csrf_token": {csrf}}, nil)

	// The database down while personal data is asked for.
	proxy.Cut()
	require.Equal(t, 503, h.call("GET", "/api/users?q=gwendolyn.pryce@clinic-example.org", viewer, "").status)
	require.Equal(t, 503, b.do("POST", "/search", url.Values{"q": {"Gwendolyn"}, "csrf_token": {csrf}}, nil).status)
	proxy.Restore()

	out := logs.String()
	require.Contains(t, out, `"msg":"admin_request_rejected"`)
	require.Contains(t, out, `"msg":"admin_signed_in"`)
	for s := range pii {
		require.NotContains(t, out, s, "personal data in the logs")
	}
}
