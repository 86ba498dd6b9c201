package ingress

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
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
	// package audit). Defaults to slog.Default().
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
	// MaxInFlight bounds the deliveries processed at once; beyond it a
	// delivery is answered 503 with Retry-After at once. Defaults to
	// DefaultMaxInFlight.
	MaxInFlight int
}

// Handler serves webhookd's HTTP endpoints.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	failures *failureLimiter
	slots    chan struct{}
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
	h := &Handler{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		failures: newFailureLimiter(cfg.FailedAuthRate, cfg.FailedAuthBurst, cfg.MaxSources, cfg.Now),
		slots:    make(chan struct{}, cfg.MaxInFlight),
	}
	for _, p := range []string{WebhookPath, LegacyWebhookPath} {
		h.mux.HandleFunc("POST "+p, h.receive)
		h.mux.HandleFunc("GET "+p, h.status)
	}
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	if cfg.Metrics != nil {
		h.mux.Handle("GET /metrics", cfg.Metrics.Handler())
	}
	return h
}

// ServeHTTP implements http.Handler. It resolves the request's source
// address (see Config.TrustedProxies) for every route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(withSource(r.Context(), resolveSource(r, h.cfg.TrustedProxies)))
	h.mux.ServeHTTP(w, r)
}

// Handle adds a route (e.g. /metrics) to the handler's mux.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

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
}

// Answers of the abuse limits.
var (
	errRateLimited = domain.Errorf(domain.ERATELIMITED, "too_many_failures", "too many requests from this address failed verification; retry later")
	errOverloaded  = domain.Errorf(domain.EUNAVAILABLE, "overloaded", "webhookd is at its limit of requests in flight; retry later")
)

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	receivedAt := h.cfg.Now().UTC()
	src := sourceOf(r)
	var o outcome
	switch {
	case h.failures.throttled(src.addr) && cannotVerify(r.Header, receivedAt):
		// A source whose failures used up its bucket, sending a request
		// that cannot verify: answered before its body is read and
		// without taking an in-flight slot.
		o = outcome{event: "rate_limited", err: errRateLimited}
	case !h.acquire():
		o = outcome{event: "overloaded", err: errOverloaded}
	default:
		o = h.process(w, r, receivedAt)
		h.release()
	}
	if o.event == "rate_limited" || o.event == "overloaded" {
		// The body was not read: closing the connection spares reading
		// it (net/http would otherwise drain it to reuse the
		// connection), and an abusive client has to connect again.
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
	h.cfg.Metrics.delivered(o.event, verifyReason, o.env.Type)

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
	}
	h.cfg.Logger.LogAttrs(r.Context(), level, o.event, attrs...)
}

func (h *Handler) process(w http.ResponseWriter, r *http.Request, receivedAt time.Time) outcome {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return outcome{event: "body_too_large", err: domain.Errorf(domain.ETOOLARGE, "body_too_large", "body is larger than %d bytes", h.cfg.MaxBodyBytes)}
		}
		return outcome{event: "event_invalid", err: domain.Errorf(domain.EINVALID, "body_unreadable", "could not read the request body")}
	}
	d, err := ReadHeaders(r.Header)
	if err != nil {
		return outcome{event: "event_invalid", err: err}
	}
	if err := h.cfg.Verifier.Verify(body, r.Header, d); err != nil {
		return outcome{event: "signature_rejected", delivery: d, err: err}
	}
	env, err := domain.ParseEnvelope(body)
	if err != nil {
		return outcome{event: "event_invalid", delivery: d, err: err}
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
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.AppendTimeout)
	defer cancel()
	appendStart := time.Now()
	res, err := h.cfg.Ledger.Append(ctx, entry)
	if err != nil {
		h.cfg.Metrics.appended("error", time.Since(appendStart))
		return outcome{event: "append_failed", delivery: d, env: env, err: err}
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
