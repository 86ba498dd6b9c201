package domain

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Reading JSON objects by exact member name.
//
// encoding/json matches a struct field to a member name case-insensitively
// (with Unicode folding), so decoding a body into a struct reads
// {"type":"a","TYPE":"b"} as type "b", while PostgreSQL's jsonb, JavaScript
// and the JSON spec read "a" (and keep the last of duplicated names). A
// ledger whose facts (event_type, subject_id) and read models disagree with
// what `SELECT payload::jsonb->>'type'` shows is not an audit trail, so every
// payload is read here by exact name: the object is decoded into a map, whose
// keys encoding/json takes verbatim (unescaped, never folded), and a
// duplicated name keeps its last value, as in jsonb.

// objectMembers returns the members of the JSON object raw by exact name
// (duplicates: the last wins). A JSON null gives a nil map and no error.
func objectMembers(raw []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// jsonKindOf names the kind of the JSON value raw ("string", "number", …),
// for error messages that must not quote the value.
func jsonKindOf(raw []byte) string {
	b := bytes.TrimLeft(raw, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// isNullOrAbsent reports whether a member is missing or JSON null.
func isNullOrAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || isJSONNull(raw)
}

// stringMember reads a member that must be a string when present: present
// is false for a missing or null member; ok is false when it is another
// kind of value. Invalid UTF-8 and lone surrogate escapes become U+FFFD, as
// encoding/json decodes them.
func stringMember(raw json.RawMessage) (s string, present, ok bool) {
	if isNullOrAbsent(raw) {
		return "", false, true
	}
	if jsonKindOf(raw) != "string" || json.Unmarshal(raw, &s) != nil {
		return "", true, false
	}
	return s, true, true
}

// The range of times every reader of the ledger and the read models can
// hold: PostgreSQL's timestamptz goes further (4713 BC to 294276 AD), but
// RFC 3339, JavaScript's Date.toISOString and most client libraries stop at
// year 9999, and nothing Clerk sends is outside it.
var (
	minMillis = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxMillis = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
)

// millisMember reads a member holding unix milliseconds. A missing or null
// member, or an integer outside year 1 to 9999, is fallback; ok is false
// for anything that is not an integer literal (1.5, 1e3, a string).
func millisMember(raw json.RawMessage, fallback time.Time) (t time.Time, ok bool) {
	if isNullOrAbsent(raw) {
		return fallback, true
	}
	text := string(bytes.TrimSpace(raw))
	if jsonKindOf(raw) != "number" || !isIntegerLiteral(text) {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(text, 10, 64)
	if err != nil || ms < minMillis || ms > maxMillis {
		// Too large for an int64, or outside the calendar every reader
		// holds: no real user carries it, and a time PostgreSQL refuses
		// would keep the user out of the read model forever.
		return fallback, true
	}
	return time.UnixMilli(ms).UTC(), true
}

// isIntegerLiteral reports whether s is a JSON number with neither
// fraction nor exponent.
func isIntegerLiteral(s string) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
