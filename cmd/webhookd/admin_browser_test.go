package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// chromiumPath finds Debian's chromium (or another Chromium/Chrome). When
// there is none the browser test is skipped, or fails with
// WEBHOOKD_REQUIRE_BROWSER=1 (CI sets it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "no Chromium on PATH (looked for chromium, chromium-browser, google-chrome): install Debian's chromium package (apt-get install chromium) to run the console's end-to-end test"
	if os.Getenv("WEBHOOKD_REQUIRE_BROWSER") == "1" {
		t.Fatal(why + "; WEBHOOKD_REQUIRE_BROWSER=1 makes this a failure")
	}
	t.Skip(why)
	return ""
}

// screenshots is where the browser test saves a PNG of each page:
// WEBHOOKD_SCREENSHOTS when set, else a new folder under the temporary
// directory (kept after the test, so a person can look).
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WEBHOOKD_SCREENSHOTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "webhookd-console-screenshots-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	fmt.Fprintf(os.Stderr, "console screenshots: %s\n", dir)
	t.Logf("console screenshots: %s", dir)
	return dir
}

// newChromium starts a headless Chromium of its own (fresh profile, no
// network beyond the test's listener).
func newChromium(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Headless,
		// The sandbox needs user namespaces or root's setuid helper, which
		// CI containers (and root) lack; the browser only loads the
		// test's own pages.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		// Without these Chromium reaches for Google's services, which a
		// closed network turns into failures and delays.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	// The first run starts the browser, on a context without a deadline
	// (a deadline there would stop the browser); the steps get one.
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	steps, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return steps
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func TestConsoleInChromium(t *testing.T) {
	path := chromiumPath(t)
	t.Parallel()
	h := startAdmin(t)
	adminToken := h.token("alice", "admin")
	viewerToken := h.token("victor", "viewer")
	id := h.user(11, clerkfake.Options{Email: "dana.katz@clinic-example.org", FirstName: "Dana", LastName: "Katz"})
	for i := range 3 {
		h.user(int64(20+i), clerkfake.Options{})
	}
	org := clerkfake.MustBuild("organization.created", clerkfake.Options{Seed: 11, Time: h.now})
	require.Equal(t, 200, h.deliver("msg_browser_org", org).status)
	var orgEnv struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(org, &orgEnv))
	var total int64
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_events`).Scan(&total))
	h.waitCheckpoint(int(total))

	dir := screenshots(t)
	ctx := newChromium(t, path)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg) // 100: PNG (lower is JPEG)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		require.NoError(t, err)
		return s
	}
	// waitText waits until the element sel holds want: after a form is
	// submitted, the page before it may still be showing.
	waitText := func(sel, want string) {
		t.Helper()
		require.Eventually(t, func() bool {
			s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
			return err == nil && strings.Contains(s, want)
		}, 30*time.Second, 50*time.Millisecond, "%s never showed %q", sel, want)
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		require.NoError(t, err)
		return strings.TrimPrefix(u, h.admin)
	}

	// Sign in with the keyboard alone: the token field has the focus.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(h.admin+"/"),
		chromedp.WaitVisible(css("#token")),
		shot("01-sign-in"),
		chromedp.KeyEvent(adminToken),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(css("#q")),
		shot("02-home"),
	))
	require.Equal(t, "/", location())
	require.Contains(t, text("header"), "alice (admin)")

	// Search by last name: a POSTed form, the query in no URL.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(css("#q"), "katz"),
		chromedp.Submit(css("#q")),
		chromedp.WaitVisible(css("table")),
		shot("03-search"),
	))
	require.Equal(t, "/search", location())
	require.Contains(t, text("table"), id)
	require.NotContains(t, text("main"), "Katz")

	// Open the user: redacted.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`a[href="/users/`+id+`"]`)),
		chromedp.WaitVisible(css("#timeline")),
		shot("04-user-redacted"),
	))
	main := text("main")
	require.Contains(t, main, "[REDACTED]")
	require.NotContains(t, main, "dana.katz")
	require.Contains(t, main, "user.created")
	require.Contains(t, main, "Clerk webhook")
	require.Contains(t, main, "✓ index", "the entry is in the latest checkpoint")

	// Reveal with a reason: an access entry with it appears in the ledger.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(css("#reveal-reason"), "subject access request 2026-88"),
		chromedp.Submit(css("#reveal-reason")),
		chromedp.WaitVisible(css(".notice")),
		shot("05-user-revealed"),
	))
	require.Contains(t, text("main"), "dana.katz@clinic-example.org")
	reads := h.accessEntries()
	var revealed bool
	for _, a := range reads {
		if a.Action == "reveal" && a.ClerkID == id && a.Reason == "subject access request 2026-88" && a.Actor == "alice" && a.Via == "console" {
			revealed = true
		}
	}
	require.True(t, revealed, "reads: %+v", reads)

	// Change access as admin.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(css("#role"), "PRACTICE_ADMIN"),
		chromedp.SendKeys(css("#practice"), orgEnv.Data.ID),
		chromedp.SendKeys(css("#access-reason"), "runs the new clinic"),
		chromedp.Submit(css("#access-reason")),
	))
	waitText(".notice", "Access change recorded in the ledger")
	h.waitUser(id, func(role string) bool { return role == "PRACTICE_ADMIN" })
	require.NoError(t, chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(css("#timeline")), shot("06-access-changed")))
	main = text("main")
	require.Contains(t, main, domain.EventUserAccessChanged)
	require.Contains(t, main, "runs the new clinic")
	require.Contains(t, main, "PRACTICE_ADMIN")

	// Integrity at a glance, and a verification run from the button.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`nav a[href="/integrity"]`)),
		chromedp.WaitVisible(css("svg")),
		shot("07-integrity"),
		chromedp.Click(css(`form[action="/integrity/verify"] button`)),
		chromedp.WaitVisible(css(".notice")),
		shot("08-verified"),
	))
	require.Contains(t, text(".notice"), ": OK.")
	require.Contains(t, text("main"), "by token:alice")

	// Export one user's entries: a .tar.gz download that verifies offline.
	downloads := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			events := true
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: &events})
			return err
		}),
		chromedp.Click(css(`nav a[href="/export"]`)),
		chromedp.WaitVisible(css("#user")),
		chromedp.SendKeys(css("#user"), id),
		shot("09-export"),
		chromedp.Submit(css("#user")),
	))
	var guid string
	for ev, err := range progress {
		require.NoError(t, err, "the export did not download")
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
	}
	r, err := bundle.VerifyBundle(context.Background(), filepath.Join(downloads, guid), bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{sealKey.Public().(ed25519.PublicKey)}})
	require.NoError(t, err)
	require.NoError(t, r.Err())
	require.GreaterOrEqual(t, r.Entries, 1)

	// Sign out: the console is closed until the next sign-in.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(css(`form[action="/signout"] button`)),
		chromedp.WaitVisible(css("#token")),
		shot("10-signed-out"),
		chromedp.Navigate(h.admin+"/users/"+id),
		chromedp.WaitVisible(css("#token")),
	))
	require.Equal(t, "/signin", location())

	// A viewer: no access form; a forged one is refused.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(css("#token"), viewerToken),
		chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css("#q")),
		chromedp.Navigate(h.admin+"/users/"+id),
		chromedp.WaitVisible(css("#timeline")),
	))
	forms, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/access"], form[action$="/reveal"]').length`))
	require.NoError(t, err)
	require.Zero(t, forms)
	submit := func(action string, fields map[string]string, withCSRF bool) chromedp.Action[chromedp.Void] {
		b, _ := json.Marshal(fields)
		js := fmt.Sprintf(`(() => {
			const f = document.createElement('form'); f.method = 'post'; f.action = %q;
			const fields = %s;
			if (%t) fields.csrf_token = document.querySelector('input[name=csrf_token]').value;
			for (const [k, v] of Object.entries(fields)) { const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
			document.body.appendChild(f); f.submit(); return true; })()`, action, b, withCSRF)
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](js)(ctx, tg)
			return err
		})
	}
	require.NoError(t, chromedp.Do(ctx,
		submit("/users/"+id+"/access", map[string]string{"role": "ADMIN", "reason": "promote myself"}, true),
		chromedp.WaitVisible(css(".error")),
		shot("11-viewer-refused"),
	))
	require.Contains(t, text(".error"), "needs a token with the admin role")

	// A form posted without its anti-forgery token is refused.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(h.admin+"/"),
		chromedp.WaitVisible(css("#q")),
		submit("/search", map[string]string{"q": "katz"}, false),
		chromedp.WaitVisible(css(".error")),
		shot("12-csrf-refused"),
	))
	require.Contains(t, text(".error"), "anti-forgery token is missing or wrong")

	// An idle session expires.
	*h.adminNow = h.adminNow.Add(15*time.Minute + time.Second)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(h.admin+"/integrity"),
		chromedp.WaitVisible(css("#token")),
		shot("13-session-expired"),
	))
	require.Contains(t, text(".notice"), "Your session ended after 15m0s without activity")
	require.Equal(t, "/signin?expired=1", location())
	for _, f := range []string{"01-sign-in", "05-user-revealed", "07-integrity", "13-session-expired"} {
		info, err := os.Stat(filepath.Join(dir, f+".png"))
		require.NoError(t, err)
		require.Greater(t, info.Size(), int64(1000))
	}
}
