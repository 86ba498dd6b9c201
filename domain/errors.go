package domain

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Error codes. Each maps to exactly one HTTP status in the ingress; callers
// branch on codes, never on message text.
const (
	EINVALID      = "invalid"      // the request or event is malformed; retrying will not help
	EUNAUTHORIZED = "unauthorized" // the signature or its timestamp did not verify
	ETOOLARGE     = "too_large"    // the body is over the size limit
	ECONFLICT     = "conflict"     // the thing exists already (a re-delivered svix-id)
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	ERATELIMITED  = "rate_limited" // the caller must slow down
	EUNAVAILABLE  = "unavailable"  // a dependency (the database) is down or overloaded; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is an error with a code and a message that is safe to show to the
// caller: it never holds secrets or personal data. Reason is a short, stable,
// machine-readable word (e.g. "no_matching_signature") for metrics and logs.
type Error struct {
	Code    string
	Reason  string
	Message string
	// Err is the underlying cause, for logs only (after redaction); it is
	// never shown to callers.
	Err error
}

// Error returns the safe message, prefixed with the code.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and reason and a formatted
// safe message.
func Errorf(code, reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// ErrorReason returns the reason of the first *Error in err's chain, or the
// code when none is set.
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Reason != "" {
			return e.Reason
		}
		return e.Code
	}
	if err == nil {
		return ""
	}
	return EINTERNAL
}

// ErrorMessage returns the safe message of the first *Error in err's chain,
// or a generic text for any other error (whose text may hold internals).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// NewErrorID returns an id in the original route's format,
// ERR_<unix ms>_<9 base-36 characters>, so operators' searches keep working.
// Every error answer carries one, and so does its log line.
func NewErrorID(now time.Time) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 9)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return fmt.Sprintf("ERR_%d_%s", now.UnixMilli(), b)
}
