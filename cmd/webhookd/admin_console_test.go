package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// browser is a cookie-keeping HTTP client on the console that does not
// follow redirects (tests look at them).
type browser struct {
	t      *testing.T
	h      *adminHarness
	client *http.Client
	// visited collects every URL requested, to check none holds personal
	// data or a token.
	visited []string
}

func (h *adminHarness) browser() *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(h.t, err)
	return &browser{t: h.t, h: h, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type pageAnswer struct {
	status   int
	location string
	header   http.Header
	body     string
}

func (b *browser) do(method, path string, form url.Values, header http.Header) pageAnswer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.h.admin+path, body)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	b.visited = append(b.visited, req.URL.String())
	resp, err := b.client.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return pageAnswer{status: resp.StatusCode, location: resp.Header.Get("Location"), header: resp.Header, body: string(raw)}
}

var csrfPattern = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(body)
	require.NotNil(t, m, "no anti-forgery token in the page:\n%s", body)
	return m[1]
}

// signIn signs in with token and returns the home page.
func (b *browser) signIn(token string) pageAnswer {
	b.t.Helper()
	p := b.do("GET", "/signin", nil, nil)
	require.Equal(b.t, 200, p.status)
	p = b.do("POST", "/signin", url.Values{"csrf_token": {csrfOf(b.t, p.body)}, "token": {token}}, nil)
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
	require.Equal(b.t, "/", p.location)
	home := b.do("GET", "/", nil, nil)
	require.Equal(b.t, 200, home.status)
	return home
}

func TestConsoleSessionCookieAndForms(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	viewer := h.token("victor", "viewer")
	id := h.user(8, clerkfake.Options{Email: "monica.reyes@clinic-example.org", FirstName: "Monica", LastName: "Reyes"})

	// Without a session every page sends the browser to sign in.
	b := h.browser()
	for _, path := range []string{"/", "/users/" + id, "/integrity", "/export"} {
		p := b.do("GET", path, nil, nil)
		require.Equal(t, http.StatusSeeOther, p.status, path)
		require.Equal(t, "/signin", p.location)
	}
	p := b.do("POST", "/search", url.Values{"q": {"monica"}}, nil)
	require.Equal(t, 401, p.status)
	require.Contains(t, p.body, "You are not signed in")
	require.Regexp(t, `error id <code>ERR_\d{13}_[0-9a-z]{9}</code>`, p.body)

	// The sign-in form is protected too, and a wrong token is refused.
	p = b.do("POST", "/signin", url.Values{"token": {admin}}, nil)
	require.Equal(t, 403, p.status)
	require.Contains(t, p.body, "anti-forgery token is missing or wrong")
	p = b.do("GET", "/signin", nil, nil)
	p = b.do("POST", "/signin", url.Values{"csrf_token": {csrfOf(t, p.body)}, "token": {"whdadm_wrong"}}, nil)
	require.Equal(t, 401, p.status)

	// The session cookie: HttpOnly, SameSite=Strict, Secure behind TLS.
	p = b.do("GET", "/signin", nil, http.Header{"X-Forwarded-Proto": {"https"}})
	p = b.do("POST", "/signin", url.Values{"csrf_token": {csrfOf(t, p.body)}, "token": {admin}}, http.Header{"X-Forwarded-Proto": {"https"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	cookie := p.header.Get("Set-Cookie")
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "webhookd_session=") {
			cookie = c
		}
	}
	require.Regexp(t, `^webhookd_session=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; Secure; SameSite=Strict$`, cookie)
	require.NotContains(t, cookie, admin)

	b = h.browser()
	home := b.signIn(admin)
	for _, c := range b.client.Jar.Cookies(mustURL(t, h.admin)) {
		require.NotEqual(t, admin, c.Value)
	}
	csrf := csrfOf(t, home.body)

	// Search is POSTed; a form without its token is refused (403) and
	// finds nothing.
	p = b.do("POST", "/search", url.Values{"q": {"monica"}}, nil)
	require.Equal(t, 403, p.status)
	require.Contains(t, p.body, "anti-forgery token is missing or wrong")
	p = b.do("POST", "/search", url.Values{"q": {"monica"}, "csrf_token": {"forged"}}, nil)
	require.Equal(t, 403, p.status)
	p = b.do("POST", "/search", url.Values{"q": {"monica"}, "csrf_token": {csrf}}, nil)
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, `href="/users/`+id+`"`)
	require.NotContains(t, p.body, "Reyes")

	// The user page: redacted; reveal and access forms (admin) carry the
	// token; revealing without it is refused.
	p = b.do("GET", "/users/"+id, nil, nil)
	require.Equal(t, 200, p.status)
	require.NotContains(t, p.body, "Reyes")
	require.Contains(t, p.body, "[REDACTED]")
	require.Contains(t, p.body, `action="/users/`+id+`/reveal"`)
	p = b.do("POST", "/users/"+id+"/reveal", url.Values{"reason": {"audit"}}, nil)
	require.Equal(t, 403, p.status)
	require.NotContains(t, p.body, "Reyes")
	p = b.do("POST", "/users/"+id+"/reveal", url.Values{"reason": {"audit 2026-04"}, "csrf_token": {csrf}}, nil)
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "monica.reyes@clinic-example.org")
	p = b.do("POST", "/users/"+id+"/access", url.Values{"role": {"AUDITOR"}, "reason": {"quarterly audit"}, "csrf_token": {csrf}}, nil)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/users/"+id+"?recorded=1", p.location)
	h.waitUser(id, func(role string) bool { return role == "AUDITOR" })

	// A viewer sees no admin form and is refused the admin actions.
	v := h.browser()
	vhome := v.signIn(viewer)
	vcsrf := csrfOf(t, vhome.body)
	p = v.do("GET", "/users/"+id, nil, nil)
	require.NotContains(t, p.body, "/access")
	require.NotContains(t, p.body, "/reveal")
	p = v.do("POST", "/users/"+id+"/access", url.Values{"role": {"ADMIN"}, "reason": {"promote myself"}, "csrf_token": {vcsrf}}, nil)
	require.Equal(t, 403, p.status)
	require.Contains(t, p.body, "needs a token with the admin role")
	// Another session's token does not pass.
	p = v.do("POST", "/search", url.Values{"q": {"monica"}, "csrf_token": {csrf}}, nil)
	require.Equal(t, 403, p.status)

	// Idle logoff: after the idle time, the next request ends the
	// session; signing in again works.
	*h.adminNow = h.adminNow.Add(15*time.Minute + time.Second)
	p = b.do("GET", "/users/"+id, nil, nil)
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, "/signin?expired=1", p.location)
	p = b.do("GET", "/signin?expired=1", nil, nil)
	require.Contains(t, p.body, "Your session ended after 15m0s without activity")
	p = b.do("GET", "/", nil, nil)
	require.Equal(t, http.StatusSeeOther, p.status, "the session is gone, not only refused once")
	// Activity keeps a session alive.
	home = b.signIn(admin)
	for range 3 {
		*h.adminNow = h.adminNow.Add(10 * time.Minute)
		require.Equal(t, 200, b.do("GET", "/", nil, nil).status)
	}
	// Sign out ends it.
	p = b.do("POST", "/signout", url.Values{"csrf_token": {csrfOf(t, home.body)}}, nil)
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Equal(t, http.StatusSeeOther, b.do("GET", "/", nil, nil).status)

	for _, u := range append(b.visited, v.visited...) {
		for _, secret := range []string{admin, viewer, "monica", "Monica", "Reyes", "reyes"} {
			require.NotContains(t, u, secret, "a URL the console used")
		}
	}
}

func TestConsolePagesAreSmallAndAccessible(t *testing.T) {
	t.Parallel()
	h := startAdmin(t)
	admin := h.token("alice", "admin")
	id := h.user(9, clerkfake.Options{})
	// A body near the 1 MiB limit, shown in clear on the revealed page.
	big := `{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"` + id + `","object":"user","updated_at":1,"notes":"` + strings.Repeat("é", 400_000) + `"}}`
	require.Equal(t, 200, h.deliver("msg_weight_big", []byte(big)).status)
	for i := range 150 {
		body := clerkfake.MustBuild("user.updated", clerkfake.Options{Seed: 9, Time: h.now.Add(time.Duration(i+1) * time.Second)})
		require.Equal(t, 200, h.deliver("msg_weight_"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+time.Duration(i).String(), body).status)
	}
	b := h.browser()
	home := b.signIn(admin)
	csrf := csrfOf(t, home.body)
	pages := map[string]pageAnswer{
		"home":      home,
		"search":    b.do("POST", "/search", url.Values{"q": {"user_"}, "csrf_token": {csrf}}, nil),
		"user":      b.do("GET", "/users/"+id, nil, nil),
		"reveal":    b.do("POST", "/users/"+id+"/reveal", url.Values{"reason": {"weight check"}, "csrf_token": {csrf}}, nil),
		"integrity": b.do("GET", "/integrity", nil, nil),
		"export":    b.do("GET", "/export", nil, nil),
		"signin":    h.browser().do("GET", "/signin", nil, nil),
		"css":       b.do("GET", "/static/style.css", nil, nil),
	}
	for name, p := range pages {
		require.Equal(t, 200, p.status, name)
		require.Less(t, len(p.body), 100_000, "%s weighs %d bytes", name, len(p.body))
		if name == "css" {
			continue
		}
		require.Contains(t, p.body, `<html lang="en">`, name)
		require.Contains(t, p.body, `<a class="skip" href="#main">`, name)
		require.Equal(t, "DENY", p.header.Get("X-Frame-Options"))
		require.Contains(t, p.header.Get("Content-Security-Policy"), "default-src 'none'")
		require.Equal(t, "no-store", p.header.Get("Cache-Control"))
		// Every input has a label.
		for _, m := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(p.body, -1) {
			require.Contains(t, p.body, `<label for="`+m[1]+`"`, "%s: input %s has a label", name, m[1])
		}
	}
	require.Contains(t, pages["user"].body, "Next page", "30 entries a page")
	require.Contains(t, pages["integrity"].body, `<svg xmlns="http://www.w3.org/2000/svg"`)
	require.Contains(t, pages["integrity"].body, `<title id="chart-title">Deliveries per hour by event type, last 3 days</title>`)
	require.Regexp(t, `<desc id="chart-desc">15[23] deliveries appended`, pages["integrity"].body)
	require.True(t, strings.Contains(pages["reveal"].body, "more bytes: the API&#39;s timeline or an export has the whole body]"), "the big body is clipped")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
