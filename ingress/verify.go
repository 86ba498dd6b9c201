package ingress

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"github.com/webhookd/webhookd/domain"
)

// Tolerance is how far a delivery's svix-timestamp may be from now, either
// way, as in Svix's own libraries.
const Tolerance = 5 * time.Minute

const secretPrefix = "whsec_"

// Delivery holds the Svix (or Standard Webhooks) headers of a request.
type Delivery struct {
	ID        string
	Timestamp time.Time
	Signature string
}

// Verifier checks deliveries against every active signing secret, so that
// during a rotation both the old and the new secret are accepted.
type Verifier struct {
	hooks []*svix.Webhook
	now   func() time.Time
}

// ParseSecrets splits a setting holding one or more secrets separated by
// spaces or commas. Each must have Clerk's whsec_ form with a base64 key;
// errors name the secret by position, never by value.
func ParseSecrets(setting string) ([]string, error) {
	fields := strings.FieldsFunc(setting, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("no signing secret set")
	}
	for i, s := range fields {
		if !strings.HasPrefix(s, secretPrefix) {
			return nil, fmt.Errorf("signing secret %d of %d does not start with %q (copy it from Clerk's dashboard, Webhooks → endpoint → Signing Secret)", i+1, len(fields), secretPrefix)
		}
		if _, err := svix.NewWebhook(s); err != nil || len(s) == len(secretPrefix) {
			return nil, fmt.Errorf("signing secret %d of %d is not whsec_ followed by base64", i+1, len(fields))
		}
	}
	return fields, nil
}

// NewVerifier returns a verifier for secrets (already checked by
// ParseSecrets). now is the clock for the timestamp tolerance; nil means
// time.Now.
func NewVerifier(secrets []string, now func() time.Time) (*Verifier, error) {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{now: now}
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("signing secret %d: not base64 after whsec_", i+1)
		}
		v.hooks = append(v.hooks, wh)
	}
	if len(v.hooks) == 0 {
		return nil, fmt.Errorf("no signing secret set")
	}
	return v, nil
}

// ReadHeaders returns the delivery headers, svix-* first and the Standard
// Webhooks webhook-* names otherwise, as the Svix library reads them.
func ReadHeaders(h http.Header) (Delivery, error) {
	id, ts, sig := h.Get("svix-id"), h.Get("svix-timestamp"), h.Get("svix-signature")
	if id == "" || ts == "" || sig == "" {
		id, ts, sig = h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	}
	if id == "" || ts == "" || sig == "" {
		return Delivery{}, domain.Errorf(domain.EINVALID, "missing_headers",
			"missing signature headers: svix-id, svix-timestamp and svix-signature (or webhook-id, webhook-timestamp and webhook-signature) are required")
	}
	if len(id) > 255 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return Delivery{}, domain.Errorf(domain.EINVALID, "invalid_headers", "svix-id must be at most 255 printable ASCII characters")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Delivery{}, domain.Errorf(domain.EINVALID, "invalid_headers", "svix-timestamp must be unix seconds")
	}
	return Delivery{ID: id, Timestamp: time.Unix(secs, 0).UTC(), Signature: sig}, nil
}

// Verify checks body's signature with the Svix library against every
// secret, then the timestamp against the clock. Errors are *domain.Error
// with code EUNAUTHORIZED and reason no_matching_signature,
// timestamp_too_old or timestamp_too_new.
func (v *Verifier) Verify(body []byte, h http.Header, d Delivery) error {
	// The library checks the timestamp against the wall clock; it is
	// checked here instead, against the injected clock, after the signature
	// so the reason given for a forged request is always the signature.
	matched := false
	for _, wh := range v.hooks {
		if err := wh.VerifyIgnoringTimestamp(body, h); err == nil {
			matched = true
			break
		}
	}
	if !matched {
		return domain.Errorf(domain.EUNAUTHORIZED, "no_matching_signature", "signature does not match any active signing secret")
	}
	now := v.now()
	switch {
	case now.Sub(d.Timestamp) > Tolerance:
		return domain.Errorf(domain.EUNAUTHORIZED, "timestamp_too_old", "svix-timestamp is more than %s in the past", Tolerance)
	case d.Timestamp.Sub(now) > Tolerance:
		return domain.Errorf(domain.EUNAUTHORIZED, "timestamp_too_new", "svix-timestamp is more than %s in the future", Tolerance)
	}
	return nil
}
