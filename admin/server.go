package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
)

// DefaultIdleTimeout is how long a console session lives without a request.
const DefaultIdleTimeout = 15 * time.Minute

// maxBody bounds the body of an API or form request.
const maxBody = 64 << 10

// Config is what the admin server needs.
type Config struct {
	Pool *pgxpool.Pool
	// Recorder appends the server's ledger entries (reads of personal
	// data, access changes, exports).
	Recorder *Recorder
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// IdleTimeout ends a console session after this long without a
	// request. Defaults to DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Integrity, when set, serves the integrity, projections, export and
	// chart parts (integrity.go).
	Integrity *Integrity
	// Version is shown in the console's footer.
	Version string
	// Now is the clock of sessions' idle time. Defaults to time.Now.
	Now func() time.Time
}

// Server serves the admin API and the console.
type Server struct {
	cfg    Config
	tokens *Tokens
	users  *Users
	mux    *http.ServeMux
}

// New returns the admin server of cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	s := &Server{cfg: cfg, tokens: &Tokens{Pool: cfg.Pool, Recorder: cfg.Recorder}, users: &Users{Pool: cfg.Pool}, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP answers every request of the admin listener. Its answers are
// never cached, never framed and never leak the page to another origin.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	api := func(pattern string, admin bool, h func(http.ResponseWriter, *http.Request, Principal)) {
		s.mux.HandleFunc(pattern, s.bearer(admin, h))
	}
	api("GET /api/me", false, s.apiMe)
	api("GET /api/users", false, s.apiSearch)
	api("POST /api/users/search", false, s.apiSearch)
	api("GET /api/users/{id}", false, s.apiUser)
	api("GET /api/users/{id}/timeline", false, s.apiTimeline)
	api("POST /api/users/{id}/reveal", true, s.apiReveal)
	api("POST /api/users/{id}/access", true, s.apiAccess)
	if s.cfg.Integrity != nil {
		s.cfg.Integrity.apiRoutes(s, api)
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if s.otherMethod(r) {
			s.apiError(w, r, domain.Errorf(ingress.CodeMethodNotAllowed, "method_not_allowed", "%s is not allowed on this endpoint", r.Method))
			return
		}
		s.apiError(w, r, domain.Errorf(domain.ENOTFOUND, "no_such_endpoint", "no such API endpoint"))
	})
	s.consoleRoutes()
}

// otherMethod reports whether r's path is an API endpoint for another
// method (405 rather than 404).
func (s *Server) otherMethod(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/api/" && pattern != "" {
			return true
		}
	}
	return false
}

var (
	errNoToken   = domain.Errorf(domain.EUNAUTHORIZED, "no_token", "an Authorization: Bearer <token> header is required (webhookd tokens create)")
	errForbidden = domain.Errorf(ingress.CodeForbidden, "admin_role_required", "this action needs a token with the admin role")
)

// failure logs err with a new error id and returns its status and body.
// The log line holds the route pattern, never the URL (a query may hold
// personal data) and the cause only redacted.
func (s *Server) failure(r *http.Request, err error) (int, ingress.ErrorBody) {
	code := domain.ErrorCode(err)
	status := ingress.StatusFor(code)
	body := ingress.ErrorBody{Error: code, Reason: domain.ErrorReason(err), Message: domain.ErrorMessage(err), ErrorID: domain.NewErrorID(time.Now())}
	level := slog.LevelWarn
	attrs := []slog.Attr{slog.Int("status", status), slog.String("reason", body.Reason), slog.String("error_id", body.ErrorID),
		slog.String("method", r.Method), slog.String("route", routeOf(r))}
	if status >= 500 {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", redact.SafeError(err)))
	}
	s.cfg.Logger.LogAttrs(r.Context(), level, "admin_request_rejected", attrs...)
	return status, body
}

// routeOf is the pattern that matched r, or its path without the query
// when none did.
func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.URL.Path
}

func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := s.failure(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd admin"`)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(ingress.RetryAfter))
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer authenticates an API request by its bearer token; admin requires
// the admin role.
func (s *Server) bearer(admin bool, h func(http.ResponseWriter, *http.Request, Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			s.apiError(w, r, errNoToken)
			return
		}
		p, err := s.tokens.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		if admin && !p.IsAdmin() {
			s.apiError(w, r, errForbidden)
			return
		}
		h(w, r, p)
	}
}

// decode reads a JSON request body into v, strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return domain.Errorf(domain.ETOOLARGE, "body_too_large", "the request body is over %d bytes", maxBody)
		}
		return domain.Errorf(domain.EINVALID, "invalid_json", "the request body must be a JSON object with the documented fields")
	}
	return nil
}

// access records a read of personal data before it is answered; when it
// cannot be recorded the read is refused.
func (s *Server) access(ctx context.Context, p Principal, via string, a domain.PersonalDataAccess) error {
	a.Actor, a.Role, a.Via = p.Name, p.Role, via
	if a.Fields == nil {
		a.Fields = []string{}
	}
	subject := a.ClerkID
	if subject == "" {
		subject = a.Action
	}
	if err := s.cfg.Recorder.Record(ctx, domain.EventPersonalDataAccessed, subject, a); err != nil {
		return &domain.Error{Code: domain.EUNAVAILABLE, Reason: "access_not_recorded", Message: "the read could not be recorded in the ledger, so it is refused; retry later", Err: err}
	}
	return nil
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request, p Principal) {
	writeJSON(w, http.StatusOK, map[string]string{"name": p.Name, "role": p.Role})
}

// searchUsers runs a search and records it (the ids found, which fields
// matched).
func (s *Server) searchUsers(ctx context.Context, p Principal, via, q string) ([]SearchResult, error) {
	found, err := s.users.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(found))
	matched := map[string]bool{}
	for _, f := range found {
		ids = append(ids, f.ClerkID)
		for _, m := range f.Matched {
			matched[m] = true
		}
	}
	var fields []string
	for _, f := range []string{"clerk_id", "email", "name"} {
		if matched[f] {
			fields = append(fields, f)
		}
	}
	if len(found) > 0 {
		if err := s.access(ctx, p, via, domain.PersonalDataAccess{Action: "search", IDs: ids, Fields: fields}); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// apiSearch answers GET /api/users?q= and POST /api/users/search {"q":…}
// (the query stays out of URLs and access logs).
func (s *Server) apiSearch(w http.ResponseWriter, r *http.Request, p Principal) {
	q := r.URL.Query().Get("q")
	if r.Method == http.MethodPost {
		var body struct {
			Q string `json:"q"`
		}
		if err := decode(r, &body); err != nil {
			s.apiError(w, r, err)
			return
		}
		q = body.Q
	}
	found, err := s.searchUsers(r.Context(), p, "api", q)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if found == nil {
		found = []SearchResult{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": found, "limit": searchLimit})
}

// openUser reads a user (redacted unless reveal) and records the read.
func (s *Server) openUser(ctx context.Context, p Principal, via, id string, reveal bool, reason string) (User, error) {
	u, err := s.users.Get(ctx, id, reveal)
	if err != nil {
		return User{}, err
	}
	a := domain.PersonalDataAccess{ClerkID: id, Action: "open", Reason: reason}
	if reveal {
		a.Action, a.Fields = "reveal", personalFields
	}
	return u, s.access(ctx, p, via, a)
}

func (s *Server) apiUser(w http.ResponseWriter, r *http.Request, p Principal) {
	u, err := s.openUser(r.Context(), p, "api", r.PathValue("id"), false, "")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// timelinePage parses after and limit.
func timelinePage(after, limit string) (int64, int, error) {
	var a int64
	var l int
	if after != "" {
		if _, err := fmt.Sscan(after, &a); err != nil || a < 0 {
			return 0, 0, domain.Errorf(domain.EINVALID, "invalid_after", "after must be a ledger offset (the next value of the previous page)")
		}
	}
	if limit != "" {
		if _, err := fmt.Sscan(limit, &l); err != nil || l < 1 || l > MaxTimelineLimit {
			return 0, 0, domain.Errorf(domain.EINVALID, "invalid_limit", "limit must be 1 to %d", MaxTimelineLimit)
		}
	}
	return a, l, nil
}

// userTimeline reads a timeline page and records the read.
func (s *Server) userTimeline(ctx context.Context, p Principal, via, id string, after int64, limit int, reveal bool, reason string) (Timeline, error) {
	if err := validClerkID(id); err != nil {
		return Timeline{}, err
	}
	if err := s.userExists(ctx, id); err != nil {
		return Timeline{}, err
	}
	a := domain.PersonalDataAccess{ClerkID: id, Action: "timeline", Reason: reason}
	if reveal {
		a.Action, a.Fields = "reveal_timeline", []string{"payload"}
	}
	if err := s.access(ctx, p, via, a); err != nil {
		return Timeline{}, err
	}
	return s.users.Timeline(ctx, id, after, limit, reveal)
}

// userExists answers 404 for a user the users read model does not know
// (the ledger may still mention the id; export --user finds it).
func (s *Server) userExists(ctx context.Context, id string) error {
	var ok bool
	if err := s.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE clerk_id = $1)`, id).Scan(&ok); err != nil {
		return unavailable(err)
	}
	if !ok {
		return errNoUser
	}
	return nil
}

func (s *Server) apiTimeline(w http.ResponseWriter, r *http.Request, p Principal) {
	after, limit, err := timelinePage(r.URL.Query().Get("after"), r.URL.Query().Get("limit"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	tl, err := s.userTimeline(r.Context(), p, "api", r.PathValue("id"), after, limit, false, "")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tl)
}

// validReason checks the reason for revealing or changing: required, 3 to
// 500 printable characters.
func validReason(reason string) error {
	reason = strings.TrimSpace(reason)
	if len(reason) < 3 || len(reason) > 500 || strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return domain.Errorf(domain.EINVALID, "reason_required", "a reason (3 to 500 printable characters, no personal data) is required")
	}
	return nil
}

// RevealRequest is the body of POST /api/users/{id}/reveal.
type RevealRequest struct {
	Reason string `json:"reason"`
	// Timeline also reveals a page of the timeline (After, Limit as for
	// GET …/timeline).
	Timeline bool  `json:"timeline"`
	After    int64 `json:"after"`
	Limit    int   `json:"limit"`
}

func (s *Server) apiReveal(w http.ResponseWriter, r *http.Request, p Principal) {
	var req RevealRequest
	if err := decode(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	if err := validReason(req.Reason); err != nil {
		s.apiError(w, r, err)
		return
	}
	if req.Limit < 0 || req.Limit > MaxTimelineLimit || req.After < 0 {
		s.apiError(w, r, domain.Errorf(domain.EINVALID, "invalid_limit", "limit must be 0 to %d and after a ledger offset", MaxTimelineLimit))
		return
	}
	id := r.PathValue("id")
	u, err := s.openUser(r.Context(), p, "api", id, true, strings.TrimSpace(req.Reason))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := map[string]any{"user": u}
	if req.Timeline {
		tl, err := s.userTimeline(r.Context(), p, "api", id, req.After, req.Limit, true, strings.TrimSpace(req.Reason))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		out["timeline"] = tl
	}
	writeJSON(w, http.StatusOK, out)
}

var orgIDPattern = regexp.MustCompile(`^org_[A-Za-z0-9]{1,60}$`)

// AccessRequest is the body of POST /api/users/{id}/access: the fields of
// `webhookd users assign`.
type AccessRequest struct {
	Role     *string `json:"role"`
	Practice *string `json:"practice"`
	Reason   string  `json:"reason"`
	Force    bool    `json:"force"`
}

// changeAccess records an access change made by p.
func (s *Server) changeAccess(ctx context.Context, p Principal, id string, req AccessRequest) (domain.LedgerEntry, error) {
	if err := validClerkID(id); err != nil {
		return domain.LedgerEntry{}, err
	}
	if err := validReason(req.Reason); err != nil {
		return domain.LedgerEntry{}, err
	}
	// Error answers must not echo personal data: a practice id that is
	// not one is refused without quoting it (RecordAccessChange's messages
	// quote the id, for the command line).
	if req.Practice != nil && *req.Practice != "" && !orgIDPattern.MatchString(*req.Practice) {
		return domain.LedgerEntry{}, domain.Errorf(domain.EINVALID, "invalid_practice_id", "a practice id is a Clerk organization id: org_ followed by letters and digits (empty removes the practice)")
	}
	if err := s.userExists(ctx, id); err != nil {
		return domain.LedgerEntry{}, err
	}
	change := domain.AccessChange{ClerkID: id, Role: req.Role, PracticeID: req.Practice, Actor: "token:" + p.Name, Reason: strings.TrimSpace(req.Reason)}
	return RecordAccessChange(ctx, s.cfg.Pool, s.cfg.Recorder, change, req.Force)
}

func (s *Server) apiAccess(w http.ResponseWriter, r *http.Request, p Principal) {
	var req AccessRequest
	if err := decode(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	entry, err := s.changeAccess(r.Context(), p, r.PathValue("id"), req)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"status": "recorded", "svix_id": entry.SvixID, "event_type": entry.EventType, "clerk_id": entry.SubjectID, "actor": "token:" + p.Name})
}
