package ingress

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/domain"
)

// RetryAfter is the Retry-After value, in seconds, sent with 503 (and with
// 429 unless the rate limit sets its own).
const RetryAfter = 5

// Error codes that are HTTP's own concern, so they live here rather than
// among the domain's: a request whose method its path does not serve, and
// one whose credentials are valid but not enough (the admin listener).
const (
	CodeMethodNotAllowed = "method_not_allowed"
	CodeForbidden        = "forbidden"
)

// StatusFor maps an error code to its HTTP status: the one place that
// does, for the webhook endpoint and the admin listener alike.
func StatusFor(code string) int {
	switch code {
	case domain.EINVALID:
		return http.StatusBadRequest
	case domain.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case domain.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case domain.ECONFLICT:
		return http.StatusConflict
	case domain.ENOTFOUND:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case domain.ERATELIMITED:
		return http.StatusTooManyRequests
	case domain.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON answer to a failed request (the admin listener's
// too).
type ErrorBody struct {
	// Error is the error code (invalid, unauthorized, forbidden, too_large,
	// not_found, method_not_allowed, rate_limited, unavailable, internal).
	Error string `json:"error"`
	// Reason is a stable word for the cause, e.g. no_matching_signature.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// ErrorID is also on the log line of this failure.
	ErrorID string `json:"error_id"`
}

// NewErrorID returns an id in the original route's format (domain.NewErrorID).
func NewErrorID(now time.Time) string { return domain.NewErrorID(now) }

// writeError answers err with its status and a safe body, and returns the
// error id it used.
func writeError(w http.ResponseWriter, err error, errorID string) int {
	code := domain.ErrorCode(err)
	status := StatusFor(code)
	if (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", fmt.Sprint(RetryAfter))
	}
	writeJSON(w, status, ErrorBody{
		Error:   code,
		Reason:  domain.ErrorReason(err),
		Message: domain.ErrorMessage(err),
		ErrorID: errorID,
	})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
