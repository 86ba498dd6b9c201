package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names. The session cookie holds a random id (its SHA-256 is in
// admin_sessions); the sign-in cookie carries the sign-in form's
// anti-forgery token before there is a session.
const (
	sessionCookie = "webhookd_session"
	signinCookie  = "webhookd_signin"
	csrfField     = "csrf_token"
)

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"time": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			return t.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"join": strings.Join,
	// clip keeps a page under 100 KB whatever the bodies: each shows at
	// most consoleBodyChars (the API and exports have them whole).
	"clip": func(b []byte) string {
		if len(b) <= consoleBodyChars {
			return string(b)
		}
		cut := consoleBodyChars
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return fmt.Sprintf("%s … [%d more bytes: the API's timeline or an export has the whole body]", b[:cut], len(b)-cut)
	},
}).ParseFS(templateFS, "templates/*.html"))

// Console timeline pages: consoleTimelineLimit entries, each body clipped
// to consoleBodyChars, so a page stays under 100 KB.
const (
	consoleTimelineLimit = 30
	consoleBodyChars     = 2000
)

// session is a signed-in console user.
type session struct {
	Principal
	CSRF string
}

// page is what every console template gets.
type page struct {
	Title   string
	Session *session
	Version string
	Notice  string
	Data    any
}

func (s *Server) consoleRoutes() {
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /signin", s.signinForm)
	s.mux.HandleFunc("POST /signin", s.signin)
	s.mux.HandleFunc("POST /signout", s.console(false, s.signout))
	s.mux.HandleFunc("GET /{$}", s.console(false, s.home))
	s.mux.HandleFunc("POST /search", s.console(false, s.searchPage))
	s.mux.HandleFunc("GET /users/{id}", s.console(false, s.userPage))
	s.mux.HandleFunc("POST /users/{id}/reveal", s.console(true, s.revealPage))
	s.mux.HandleFunc("POST /users/{id}/access", s.console(true, s.accessForm))
	if s.cfg.Integrity != nil {
		s.cfg.Integrity.consoleRoutes(s)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.pageError(w, r, nil, domain.Errorf(domain.ENOTFOUND, "no_such_page", "There is no such page."))
	})
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	p.Version = s.cfg.Version
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, p); err != nil {
		s.cfg.Logger.Error("admin_template_failed", "template", name, "error", err.Error())
	}
}

// pageError answers an error as a page with its error id.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	status, body := s.failure(r, err)
	s.render(w, status, "error.html", page{Title: "Error", Session: sess, Data: body})
}

func randomText() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashText(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// secure tells whether r came over TLS (directly or through a proxy that
// says so): cookies are then Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(r)})
}

// errNoSession sends the browser to the sign-in page.
var errNoSession = errors.New("no session")

// loadSession returns the live session of r's cookie and marks it used;
// an idle one is ended (errExpired).
func (s *Server) loadSession(ctx context.Context, r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, errNoSession
	}
	hash := hashText(c.Value)
	var sess session
	var lastSeen time.Time
	err = s.cfg.Pool.QueryRow(ctx, `SELECT s.token_name, t.role, s.csrf_token, s.last_seen_at
		FROM admin_sessions s JOIN admin_tokens t ON t.name = s.token_name
		WHERE s.session_hash = $1 AND t.revoked_at IS NULL`, hash).Scan(&sess.Name, &sess.Role, &sess.CSRF, &lastSeen)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, unavailable(err)
	}
	now := s.cfg.Now().UTC()
	if now.Sub(lastSeen) > s.cfg.IdleTimeout {
		if _, err := s.cfg.Pool.Exec(ctx, `DELETE FROM admin_sessions WHERE session_hash = $1`, hash); err != nil {
			return nil, unavailable(err)
		}
		return nil, errExpired
	}
	if _, err := s.cfg.Pool.Exec(ctx, `UPDATE admin_sessions SET last_seen_at = $2 WHERE session_hash = $1`, hash, now); err != nil {
		return nil, unavailable(err)
	}
	return &sess, nil
}

var errExpired = errors.New("session expired")

// EndIdleSessions removes the sessions idle for longer than IdleTimeout
// (each would be refused at its next request anyway) and returns how many
// it removed. One indexed DELETE (admin_sessions_last_seen_idx).
func (s *Server) EndIdleSessions(ctx context.Context) (int64, error) {
	tag, err := s.cfg.Pool.Exec(ctx, `DELETE FROM admin_sessions WHERE last_seen_at < $1`, s.cfg.Now().UTC().Add(-s.cfg.IdleTimeout))
	if err != nil {
		return 0, fmt.Errorf("end idle console sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DefaultSessionSweep is how often SweepSessions runs by default.
const DefaultSessionSweep = time.Minute

// SweepSessions calls EndIdleSessions at once and then every interval
// (DefaultSessionSweep when not positive) until ctx is done, so that a
// session nobody comes back to does not stay in admin_sessions until
// the next sign-in. Failures are logged and retried at the next tick.
func (s *Server) SweepSessions(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultSessionSweep
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := s.EndIdleSessions(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("admin_sessions_sweep_failed", slog.String("cause", redact.SafeError(err)))
		case n > 0:
			s.cfg.Logger.Info("admin_sessions_ended", slog.Int64("sessions", n), slog.Duration("idle_timeout", s.cfg.IdleTimeout))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// console wraps a console handler: a session is required (else the
// sign-in page), every POST must carry the session's anti-forgery token,
// and admin handlers need the admin role.
func (s *Server) console(admin bool, h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.loadSession(r.Context(), r)
		switch {
		case errors.Is(err, errNoSession), errors.Is(err, errExpired):
			s.setCookie(w, r, sessionCookie, "", -1)
			target := "/signin"
			if errors.Is(err, errExpired) {
				target = "/signin?expired=1"
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, target, http.StatusSeeOther)
				return
			}
			s.pageError(w, r, nil, domain.Errorf(domain.EUNAUTHORIZED, "no_session", "You are not signed in (or your session ended after %s idle). Sign in again.", s.cfg.IdleTimeout))
			return
		case err != nil:
			s.pageError(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				s.pageError(w, r, sess, domain.Errorf(domain.EINVALID, "invalid_form", "The form could not be read."))
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(sess.CSRF)) != 1 {
				s.pageError(w, r, sess, domain.Errorf(ingress.CodeForbidden, "csrf_token_mismatch", "The form's anti-forgery token is missing or wrong. Reload the page and try again."))
				return
			}
		}
		if admin && !sess.IsAdmin() {
			s.pageError(w, r, sess, errForbidden)
			return
		}
		h(w, r, sess)
	}
}

func (s *Server) signinForm(w http.ResponseWriter, r *http.Request) {
	token := randomText()
	s.setCookie(w, r, signinCookie, token, 600)
	notice := ""
	if r.URL.Query().Get("expired") != "" {
		notice = "Your session ended after " + s.cfg.IdleTimeout.String() + " without activity. Sign in again."
	}
	s.render(w, http.StatusOK, "signin.html", page{Title: "Sign in", Notice: notice, Data: map[string]string{"CSRF": token}})
}

// signin exchanges a token (POSTed, never in a URL) for a session.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(signinCookie)
	if err := r.ParseForm(); err != nil {
		s.pageError(w, r, nil, domain.Errorf(domain.EINVALID, "invalid_form", "The form could not be read."))
		return
	}
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(c.Value)) != 1 {
		s.pageError(w, r, nil, domain.Errorf(ingress.CodeForbidden, "csrf_token_mismatch", "The sign-in form's anti-forgery token is missing or wrong. Reload the page and try again."))
		return
	}
	p, err := s.tokens.Authenticate(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		s.pageError(w, r, nil, err)
		return
	}
	id, csrf := randomText(), randomText()
	now := s.cfg.Now().UTC()
	if _, err := s.cfg.Pool.Exec(r.Context(), `INSERT INTO admin_sessions (session_hash, token_name, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)`,
		hashText(id), p.Name, csrf, now); err != nil {
		s.pageError(w, r, nil, unavailable(err))
		return
	}
	// Sessions idle past their time are removed as new ones start (and
	// by SweepSessions in serve).
	_, _ = s.EndIdleSessions(r.Context())
	s.setCookie(w, r, signinCookie, "", -1)
	s.setCookie(w, r, sessionCookie, id, 0)
	s.cfg.Logger.Info("admin_signed_in", "token", p.Name, "role", p.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) signout(w http.ResponseWriter, r *http.Request, sess *session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if _, err := s.cfg.Pool.Exec(r.Context(), `DELETE FROM admin_sessions WHERE session_hash = $1`, hashText(c.Value)); err != nil {
			s.pageError(w, r, sess, unavailable(err))
			return
		}
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, http.StatusOK, "home.html", page{Title: "Users", Session: sess})
}

// searchPage answers the search form: POSTed, so the query (an email, a
// name) is in no URL, history or access log.
func (s *Server) searchPage(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.PostForm.Get("q")
	found, err := s.searchUsers(r.Context(), sess.Principal, "console", q)
	if err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	s.render(w, http.StatusOK, "home.html", page{Title: "Users", Session: sess, Data: map[string]any{"Searched": true, "Results": found}})
}

// userData is the user page's data.
type userData struct {
	User     User
	Timeline Timeline
	Reason   string
}

func (s *Server) userView(ctx context.Context, sess *session, id string, after int64, reveal bool, reason string) (userData, error) {
	u, err := s.openUser(ctx, sess.Principal, "console", id, reveal, reason)
	if err != nil {
		return userData{}, err
	}
	tl, err := s.userTimeline(ctx, sess.Principal, "console", id, after, consoleTimelineLimit, reveal, reason)
	if err != nil {
		return userData{}, err
	}
	return userData{User: u, Timeline: tl, Reason: reason}, nil
}

func (s *Server) userPage(w http.ResponseWriter, r *http.Request, sess *session) {
	after, _, err := timelinePage(r.URL.Query().Get("after"), "")
	if err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	d, err := s.userView(r.Context(), sess, r.PathValue("id"), after, false, "")
	if err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	notice := ""
	if r.URL.Query().Get("recorded") != "" {
		notice = "Access change recorded in the ledger. The users read model shows it once the projection has applied it."
	}
	s.render(w, http.StatusOK, "user.html", page{Title: "User " + d.User.ClerkID, Session: sess, Notice: notice, Data: d})
}

func (s *Server) revealPage(w http.ResponseWriter, r *http.Request, sess *session) {
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if err := validReason(reason); err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	d, err := s.userView(r.Context(), sess, r.PathValue("id"), 0, true, reason)
	if err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	s.render(w, http.StatusOK, "user.html", page{Title: "User " + d.User.ClerkID, Session: sess,
		Notice: "Personal data revealed; this view is recorded in the ledger with your reason.", Data: d})
}

func (s *Server) accessForm(w http.ResponseWriter, r *http.Request, sess *session) {
	var req AccessRequest
	if role := strings.TrimSpace(r.PostForm.Get("role")); role != "" {
		req.Role = &role
	}
	if r.PostForm.Has("practice") {
		switch practice := strings.TrimSpace(r.PostForm.Get("practice")); {
		case r.PostForm.Get("clear_practice") == "on":
			empty := ""
			req.Practice = &empty
		case practice != "":
			req.Practice = &practice
		}
	}
	req.Reason = r.PostForm.Get("reason")
	req.Force = r.PostForm.Get("force") == "on"
	id := r.PathValue("id")
	if _, err := s.changeAccess(r.Context(), sess.Principal, id, req); err != nil {
		s.pageError(w, r, sess, err)
		return
	}
	http.Redirect(w, r, "/users/"+id+"?recorded=1", http.StatusSeeOther)
}
