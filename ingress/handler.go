package ingress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/webhookd/webhookd/domain"
)

// Paths of the webhook endpoint: the first is webhookd's, the second the
// original Next.js route's, so existing Clerk dashboard settings keep
// working.
const (
	WebhookPath       = "/webhooks/clerk"
	LegacyWebhookPath = "/api/webhooks/clerk"
)

// DefaultMaxBodyBytes is the default body limit: 1 MiB, far above any Clerk
// event.
const DefaultMaxBodyBytes = 1 << 20

// Appender appends an entry to the ledger; *eventstore.Store is one.
type Appender interface {
	Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error)
}

// Check is one readiness check. Run returns what /readyz shows for it
// (nil shows "ok"), or an error: a *domain.Error or an error whose text is
// safe to show. With an error, a non-nil detail is shown instead of the
// error's text (a failing state with its facts).
type Check struct {
	Name string
	Run  func(ctx context.Context) (any, error)
}

// ErrDegraded is matched by a readiness check's error when the failure
// must be seen but the instance should keep taking deliveries (losing
// Clerk's events would be worse): /readyz then answers 200 with status
// "degraded" and the check's detail, unless another check fails.
var ErrDegraded = errors.New("degraded")

// Config configures a Handler.
type Config struct {
	Verifier *Verifier
	Ledger   Appender
	// Logger receives one audit line per delivery. It must redact (see
	// package audit/redact). Defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock for received_at and error ids. Defaults to time.Now.
	Now     func() time.Time
	Version string
	// MaxBodyBytes caps a delivery's body. Defaults to DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AppendTimeout bounds one ledger append. Defaults to 10s.
	AppendTimeout time.Duration
	// Readiness checks run by GET /readyz, in order.
	Readiness []Check
	// Metrics, when set, records every delivery and is served on GET
	// /metrics.
	Metrics *Metrics
	// TrustedProxies are the peers whose X-Forwarded-For is honoured to
	// find a request's source address. Defaults to none: the source is
	// the TCP peer.
	TrustedProxies []netip.Prefix
	// FailedAuthRate is the sustained rate, per second and per source
	// address, of requests failing verification that are answered 401 or
	// 400; beyond it and FailedAuthBurst they are answered 429. Verified
	// deliveries are never limited by it. Defaults to
	// DefaultFailedAuthRate.
	FailedAuthRate float64
	// FailedAuthBurst defaults to DefaultFailedAuthBurst.
	FailedAuthBurst int
	// MaxSources bounds how many addresses the failed-verification limiter
	// tracks. Defaults to DefaultMaxSources.
	MaxSources int
	// MaxInFlight bounds the verified deliveries being parsed and
	// appended at once; beyond it a delivery is answered 503 with
	// Retry-After at once. A slot is taken only once the body has been
	// read and its signature verified, so slow or forged requests never
	// hold one. Defaults to DefaultMaxInFlight.
	MaxInFlight int
	// MaxBodyReadsPerSource bounds the bodies one source address (IPv6:
	// one /64) may be sending at once; beyond it a request is answered
	// 429 before its body is read. Defaults to
	// DefaultMaxBodyReadsPerSource.
	MaxBodyReadsPerSource int
	// BodyReadTimeout bounds the time to receive a body, from the moment
	// the handler starts reading it; a body not complete by then is
	// answered 400 body_unreadable and counts as a failed verification.
	// Defaults to DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// Verified, when set, is called with each delivery whose signature
	// verified and whose envelope was read, as the ledger entry about to be
	// appended (seal.Recent.Remember). Defaults to none.
	Verified func(domain.LedgerEntry)
	// RejectLogInterval is the interval over which rejected requests (4xx
	// answers) are logged in aggregate: the first rejection of each
	// source address, event and reason in an interval is logged in full,
	// the others are counted and summarised in one rejections_suppressed
	// line per source, event and reason when the interval ends (see
	// FlushDueRejections). Metrics count every request. Defaults to
	// DefaultRejectLogInterval; negative logs every rejection in full.
	RejectLogInterval time.Duration
}

// Handler serves webhookd's HTTP endpoints.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	failures *failureLimiter
	readers  *readerLimit
	rejects  *rejectLog
	slots    chan struct{}
	// allowed lists, per path, the methods it is routed for (see route).
	allowed map[string][]string
}

// NewHandler returns the handler for cfg.
func NewHandler(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = 10 * time.Second
	}
	if cfg.FailedAuthRate <= 0 {
		cfg.FailedAuthRate = DefaultFailedAuthRate
	}
	if cfg.FailedAuthBurst <= 0 {
		cfg.FailedAuthBurst = DefaultFailedAuthBurst
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxBodyReadsPerSource <= 0 {
		cfg.MaxBodyReadsPerSource = DefaultMaxBodyReadsPerSource
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.RejectLogInterval == 0 {
		cfg.RejectLogInterval = DefaultRejectLogInterval
	}
	h := &Handler{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		failures: newFailureLimiter(cfg.FailedAuthRate, cfg.FailedAuthBurst, cfg.MaxSources, cfg.Now),
		readers:  newReaderLimit(cfg.MaxBodyReadsPerSource),
		rejects:  newRejectLog(cfg.Logger, cfg.RejectLogInterval, cfg.MaxSources, cfg.Now),
		slots:    make(chan struct{}, cfg.MaxInFlight),
		allowed:  map[string][]string{},
	}
	for _, p := range []string{WebhookPath, LegacyWebhookPath} {
		h.route(http.MethodPost, p, http.HandlerFunc(h.receive))
		h.route(http.MethodGet, p, http.HandlerFunc(h.status))
	}
	h.route(http.MethodGet, "/healthz", http.HandlerFunc(h.healthz))
	h.route(http.MethodGet, "/readyz", http.HandlerFunc(h.readyz))
	if cfg.Metrics != nil {
		h.route(http.MethodGet, "/metrics", cfg.Metrics.Handler())
	}
	// Every other path: a JSON 404 like every other error, instead of
	// net/http's text/plain one.
	h.mux.HandleFunc("/", h.notFound)
	return h
}

// route serves handler for method on path. The first route on a path also
// registers the path for every method, so that a method it is not routed
// for is answered by methodNotAllowed (a JSON 405 with Allow) rather than
// net/http's text/plain one: a pattern with a method is more specific than
// the same path without one.
func (h *Handler) route(method, path string, handler http.Handler) {
	if _, seen := h.allowed[path]; !seen {
		h.mux.HandleFunc(path, h.methodNotAllowed)
	}
	h.allowed[path] = append(h.allowed[path], method)
	if method == http.MethodGet {
		// net/http routes HEAD to a GET pattern.
		h.allowed[path] = append(h.allowed[path], http.MethodHead)
	}
	h.mux.Handle(method+" "+path, handler)
}

// ServeHTTP implements http.Handler. It resolves the request's source
// address (see Config.TrustedProxies) for every route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(withSource(r.Context(), resolveSource(r, h.cfg.TrustedProxies)))
	h.mux.ServeHTTP(w, r)
}

// Handle adds a route to the handler's mux. pattern is "METHOD /path"
// (e.g. "GET /ledger/checkpoint"); other methods on the path are answered
// 405 like those of the built-in routes. It must be called before the
// handler serves.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		// No method: every method is served; nothing to refuse.
		h.mux.Handle(pattern, handler)
		return
	}
	h.route(method, strings.TrimSpace(path), handler)
}

// Answers to requests no route serves.
var (
	errNotFound = domain.Errorf(domain.ENOTFOUND, "route_not_found", "no such endpoint; webhooks go to POST "+WebhookPath)
)

// notFound answers a path no route serves.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.refuse(w, r, "route_not_found", errNotFound)
}

// methodNotAllowed answers a method a routed path does not serve.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	allowed := h.allowed[r.URL.Path]
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	h.refuse(w, r, "method_not_allowed", domain.Errorf(CodeMethodNotAllowed, "method_not_allowed",
		"%s is not served on this path; allowed: %s", safeMethod(r.Method), strings.Join(allowed, ", ")))
}

// safeMethod is r.Method fit for an answer: a client may send any token as
// a method, so anything but a standard one is not echoed.
func safeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "this method"
}

// refuse answers a request that reached no handler with a JSON error and
// logs it like a rejected delivery (with its error id).
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, event string, err error) {
	src := sourceOf(r)
	errorID := NewErrorID(h.cfg.Now().UTC())
	status := writeError(w, err, errorID)
	attrs := []slog.Attr{
		slog.String("method", safeMethod(r.Method)),
		slog.String("remote_addr", addrText(src.addr)),
	}
	if src.proxy.IsValid() {
		attrs = append(attrs, slog.String("proxy_addr", src.proxy.String()))
	}
	attrs = append(attrs,
		slog.String("outcome", "rejected"),
		slog.Int("status", status),
		slog.String("error_id", errorID),
		slog.String("reason", domain.ErrorReason(err)),
	)
	if h.rejects.admit(r.Context(), src.addr, event, domain.ErrorReason(err), status) {
		h.cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, event, attrs...)
	}
}

// FlushDueRejections writes the summary of rejected requests (see
// Config.RejectLogInterval) if its interval has ended. The server calls
// it periodically, so that a flood that stops is still summarised.
func (h *Handler) FlushDueRejections(ctx context.Context) { h.rejects.flushDue(ctx) }

// FlushRejections writes the summary of rejected requests counted so far,
// whether or not the interval has ended (at shutdown).
func (h *Handler) FlushRejections(ctx context.Context) { h.rejects.flush(ctx) }

// Accepted is the JSON answer to a delivery that is in the ledger.
type Accepted struct {
	// Status is "accepted" for a new event, "duplicate" for a svix-id
	// already in the ledger (nothing was appended).
	Status    string `json:"status"`
	SvixID    string `json:"svix_id"`
	EventType string `json:"event_type"`
}

// outcome is what one delivery came to, for the audit line.
type outcome struct {
	event    string
	delivery Delivery
	env      domain.Envelope
	err      error
	// signed is true once the signature verified: Clerk sent this body.
	signed bool
}

// AbortHeader and AbortValue tell Svix to stop retrying a message
// (docs.svix.com, "Delivery Control"). webhookd sends them only with a 4xx
// for a body whose signature verified and that can never be accepted: a
// retry would carry the same bytes and get the same answer for 27 hours.
// Never with a 401 (a secret being rotated), 429 or 5xx, which a retry can
// pass.
const (
	AbortHeader = "webhook-delivery"
	AbortValue  = "abort-message"
)

// Answers of the abuse limits.
var (
	errRateLimited = domain.Errorf(domain.ERATELIMITED, "too_many_failures", "too many requests from this address failed verification; retry later")
	errReadLimited = domain.Errorf(domain.ERATELIMITED, "too_many_body_reads", "too many requests from this address are still sending their body; retry later")
	errOverloaded  = domain.Errorf(domain.EUNAVAILABLE, "overloaded", "webhookd is at its limit of requests in flight; retry later")
)

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	receivedAt := h.cfg.Now().UTC()
	src := sourceOf(r)
	var o outcome
	bodyUnread := false
	switch {
	case h.failures.throttled(src.addr) && cannotVerify(r.Header, receivedAt):
		// A source whose failures used up its bucket, sending a request
		// that cannot verify: answered before its body is read and
		// without taking an in-flight slot.
		o, bodyUnread = outcome{event: "rate_limited", err: errRateLimited}, true
	case !h.readers.acquire(src.addr):
		// This source already sends as many bodies as it may: refused
		// before the body is read, so a slow sender cannot hold more.
		o, bodyUnread = outcome{event: "read_limited", err: errReadLimited}, true
	default:
		h.cfg.Metrics.bodyReadsAdd(1)
		body, err := h.readBody(w, r)
		h.readers.release(src.addr)
		h.cfg.Metrics.bodyReadsAdd(-1)
		if err != nil {
			o = outcome{event: err.event, err: err.err}
		} else {
			o = h.process(w, r, body, receivedAt)
		}
	}
	if bodyUnread {
		// Refused before the body was read: the connection is closed
		// after the answer, and its read deadline is now, so net/http
		// does not drain the body first (it reads up to 256 KiB of an
		// unread body to reuse the connection, at the sender's pace).
		// An abusive client has to connect again.
		w.Header().Set("Connection", "close")
		defer func() { _ = http.NewResponseController(w).SetReadDeadline(time.Now()) }()
	}
	if domain.ErrorReason(o.err) == "body_unreadable" {
		// The connection's read side is dead (deadline or reset).
		w.Header().Set("Connection", "close")
	}
	verifyReason := ""
	if o.err != nil {
		if reason := domain.ErrorReason(o.err); isVerificationReason(reason) || reason == "body_too_large" {
			if isVerificationReason(reason) {
				verifyReason = reason
			}
			if !h.failures.fail(src.addr) {
				o = outcome{event: "rate_limited", delivery: o.delivery, err: errRateLimited}
			}
		}
		if o.event == "rate_limited" {
			w.Header().Set("Retry-After", strconv.Itoa(h.failures.retryAfter()))
		}
	}
	h.cfg.Metrics.delivered(o.event, verifyReason, o.env.Type, h.cfg.Now())

	attrs := []slog.Attr{
		slog.String("svix_id", o.delivery.ID),
		slog.String("event_type", o.env.Type),
		slog.String("clerk_id", o.env.SubjectID),
		slog.String("remote_addr", addrText(src.addr)),
	}
	if src.proxy.IsValid() {
		attrs = append(attrs, slog.String("proxy_addr", src.proxy.String()))
	}
	attrs = append(attrs, slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	level := slog.LevelInfo
	if o.err == nil {
		attrs = append(attrs, slog.String("outcome", "stored"), slog.Int("status", http.StatusOK))
	} else {
		errorID := NewErrorID(receivedAt)
		if o.signed && neverAccepted(o.err) {
			w.Header().Set(AbortHeader, AbortValue)
		}
		status := writeError(w, o.err, errorID)
		result := "rejected"
		level = slog.LevelWarn
		if status >= 500 {
			result, level = "failed", slog.LevelError
			// The cause is for the operator; the redacting handler masks
			// anything personal in it.
			attrs = append(attrs, slog.String("cause", o.err.Error()))
		}
		attrs = append(attrs,
			slog.String("outcome", result),
			slog.Int("status", status),
			slog.String("error_id", errorID),
			slog.String("reason", domain.ErrorReason(o.err)),
		)
		if status < 500 && !h.rejects.admit(r.Context(), src.addr, o.event, domain.ErrorReason(o.err), status) {
			// Counted for the interval's summary line.
			return
		}
	}
	h.cfg.Logger.LogAttrs(r.Context(), level, o.event, attrs...)
}

// neverAccepted reports whether err is the same answer every retry of the
// same body gets: the body itself is refused (invalid, too large).
func neverAccepted(err error) bool {
	switch domain.ErrorCode(err) {
	case domain.EINVALID, domain.ETOOLARGE:
		return true
	}
	return false
}

// readError is a body that could not be read, as the outcome to log.
type readError struct {
	event string
	err   error
}

// readBody reads the request body, at most MaxBodyBytes of it within
// BodyReadTimeout. The deadline is the connection's (real time, not
// Config.Now): a sender that trickles its body is cut off then, instead of
// at the server's whole-request read timeout.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *readError) {
	rc := http.NewResponseController(w)
	// An error means the writer cannot set deadlines (not a net/http
	// connection); the server's own read timeout still applies.
	_ = rc.SetReadDeadline(time.Now().Add(h.cfg.BodyReadTimeout))
	body, err := readAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes), r.ContentLength, h.cfg.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &readError{event: "body_too_large", err: domain.Errorf(domain.ETOOLARGE, "body_too_large", "body is larger than %d bytes", h.cfg.MaxBodyBytes)}
		}
		return nil, &readError{event: "event_invalid", err: domain.Errorf(domain.EINVALID, "body_unreadable", "could not read the request body within %s", h.cfg.BodyReadTimeout)}
	}
	return body, nil
}

// readAll is io.ReadAll into a buffer of the size the request announced
// (Content-Length, when it is within max): one allocation for the body
// instead of io.ReadAll's growing copies (about 3.8 kB allocated for a
// 1.6 kB Clerk event). The announced size is only a hint: a body shorter
// or longer than it is read whole all the same, and r stays bounded by
// its MaxBytesReader.
func readAll(r io.Reader, announced, max int64) ([]byte, error) {
	if announced <= 0 || announced > max {
		return io.ReadAll(r)
	}
	// One byte more than announced, so that a body that is exactly as
	// long is read without growing the buffer to see EOF.
	buf := make([]byte, 0, announced+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// process verifies, parses and appends a delivery whose body has been
// read. The in-flight slot is taken only here, after the signature
// verified: what it guards (parsing, the database) is only for deliveries
// Clerk signed.
func (h *Handler) process(w http.ResponseWriter, r *http.Request, body []byte, receivedAt time.Time) outcome {
	d, err := ReadHeaders(r.Header)
	if err != nil {
		return outcome{event: "event_invalid", err: err}
	}
	if err := h.cfg.Verifier.Verify(body, r.Header, d); err != nil {
		return outcome{event: "signature_rejected", delivery: d, err: err}
	}
	if !h.acquire() {
		return outcome{event: "overloaded", delivery: d, err: errOverloaded}
	}
	defer h.release()
	env, err := domain.ReadEnvelope(body)
	if err != nil {
		return outcome{event: "event_invalid", delivery: d, err: err, signed: true}
	}
	entry := domain.LedgerEntry{
		SvixID:        d.ID,
		SvixTimestamp: d.Timestamp,
		Signature:     d.Signature,
		Source:        domain.SourceClerk,
		EventType:     env.Type,
		SubjectID:     env.SubjectID,
		InstanceID:    env.InstanceID,
		EventTime:     env.Time,
		TimestampUnit: env.TimestampUnit,
		ReceivedAt:    receivedAt,
		SourceIP:      addrText(sourceOf(r).addr),
		Payload:       body,
	}
	if h.cfg.Verified != nil {
		h.cfg.Verified(entry)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.AppendTimeout)
	defer cancel()
	appendStart := time.Now()
	res, err := h.cfg.Ledger.Append(ctx, entry)
	if err != nil {
		h.cfg.Metrics.appended("error", time.Since(appendStart))
		return outcome{event: "append_failed", delivery: d, env: env, err: err, signed: true}
	}
	answer := Accepted{Status: "accepted", SvixID: d.ID, EventType: env.Type}
	event, result := "event_appended", "appended"
	if res.Duplicate {
		answer.Status, event, result = "duplicate", "event_duplicate", "duplicate"
	}
	h.cfg.Metrics.appended(result, time.Since(appendStart))
	writeJSON(w, http.StatusOK, answer)
	return outcome{event: event, delivery: d, env: env}
}

// acquire takes an in-flight slot without waiting; false means the
// request is to be shed.
func (h *Handler) acquire() bool {
	select {
	case h.slots <- struct{}{}:
		h.cfg.Metrics.inFlightAdd(1)
		return true
	default:
		return false
	}
}

func (h *Handler) release() {
	<-h.slots
	h.cfg.Metrics.inFlightAdd(-1)
}

// addrText is a for logs and the ledger; "" when unknown.
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Status is the answer to GET /webhooks/clerk.
type Status struct {
	Status  string   `json:"status"`
	Service string   `json:"service"`
	Version string   `json:"version"`
	Events  string   `json:"events"`
	Paths   []string `json:"paths"`
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Status{
		Status:  "ok",
		Service: "webhookd",
		Version: h.cfg.Version,
		Events:  "every Clerk event type is recorded in the ledger",
		Paths:   []string{WebhookPath, LegacyWebhookPath},
	})
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is the answer to GET /readyz.
type Readiness struct {
	Status string         `json:"status"`
	Checks map[string]any `json:"checks"`
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	out := Readiness{Status: "ready", Checks: map[string]any{}}
	status := http.StatusOK
	for _, c := range h.cfg.Readiness {
		detail, err := c.Run(ctx)
		switch {
		case errors.Is(err, ErrDegraded):
			if status == http.StatusOK {
				out.Status = "degraded"
			}
			out.Checks[c.Name] = detail
		case err != nil:
			out.Status, status = "not_ready", http.StatusServiceUnavailable
			out.Checks[c.Name] = safeText(err)
			if detail != nil {
				out.Checks[c.Name] = detail
			}
		case detail == nil:
			out.Checks[c.Name] = "ok"
		default:
			out.Checks[c.Name] = detail
		}
	}
	if status != http.StatusOK {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, status, out)
}

// safeText is the text of a readiness failure: a domain error's message,
// or the error itself for the checks' own errors, which hold no personal
// data (schema versions, lag figures).
func safeText(err error) string {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Message
	}
	return err.Error()
}
