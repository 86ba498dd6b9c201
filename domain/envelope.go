package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Timestamp units Clerk uses for an envelope's "timestamp": live events and
// Clerk's docs carry milliseconds, the examples in Clerk's OpenAPI spec
// carry seconds. ParseEnvelope accepts both and records which it assumed.
const (
	UnitMilliseconds = "ms"
	UnitSeconds      = "s"
)

// secondsCutoff separates the two units: a value below it is taken as
// seconds. 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973,
// before Clerk existed, so no real event is ambiguous.
const secondsCutoff = 100_000_000_000

// Limits on identifying fields, so that one bad event cannot put a megabyte
// into an indexed column.
const (
	maxTypeLen = 100
	maxIDLen   = 255
)

var eventTypePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)

// Envelope is the validated outer shape of a Clerk webhook event. Data and
// EventAttributes are kept as raw JSON: the ledger stores the whole body
// byte for byte, and each projection decodes only what it needs.
type Envelope struct {
	Type       string
	InstanceID string
	// SubjectID is data.id: the Clerk id of the user, session, organization…
	// the event is about.
	SubjectID string
	// Time is Clerk's event time, from "timestamp".
	Time time.Time
	// TimestampUnit says how "timestamp" was read: UnitMilliseconds or
	// UnitSeconds.
	TimestampUnit   string
	Data            json.RawMessage
	EventAttributes json.RawMessage
}

type rawEnvelope struct {
	Type            *string         `json:"type"`
	Object          *string         `json:"object"`
	InstanceID      *string         `json:"instance_id"`
	Timestamp       json.RawMessage `json:"timestamp"`
	Data            json.RawMessage `json:"data"`
	EventAttributes json.RawMessage `json:"event_attributes"`
}

// ParseEnvelope checks that body is a Clerk event envelope: a JSON object
// with "object": "event", a dotted "type", an "instance_id", a positive
// numeric "timestamp" (milliseconds or seconds), a "data" object with a
// string "id", and, when present, an "event_attributes" object.
//
// Errors are *Error with code EINVALID and reason "body_not_json" or
// "not_clerk_event"; their messages name the field at fault and never quote
// the body's values, which may hold personal data.
func ParseEnvelope(body []byte) (Envelope, error) {
	var raw rawEnvelope
	if err := json.Unmarshal(body, &raw); err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return Envelope{}, Errorf(EINVALID, "body_not_json", "body is not valid JSON (syntax error at byte %d)", syntaxErr.Offset)
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return Envelope{}, Errorf(EINVALID, "not_clerk_event", "body is JSON but not an object: a Clerk event is a JSON object")
		case errors.As(err, &typeErr):
			return Envelope{}, invalidField(typeErr.Field, "must be a "+jsonKind(typeErr.Type.Kind().String()))
		default:
			return Envelope{}, Errorf(EINVALID, "body_not_json", "body is not valid JSON")
		}
	}
	if raw.Object == nil || *raw.Object != "event" {
		return Envelope{}, invalidField("object", `must be "event"`)
	}
	if raw.Type == nil || *raw.Type == "" {
		return Envelope{}, invalidField("type", "is required")
	}
	if len(*raw.Type) > maxTypeLen || !eventTypePattern.MatchString(*raw.Type) {
		return Envelope{}, invalidField("type", `must look like "user.created"`)
	}
	if raw.InstanceID == nil || *raw.InstanceID == "" {
		return Envelope{}, invalidField("instance_id", "is required")
	}
	if err := checkID("instance_id", *raw.InstanceID); err != nil {
		return Envelope{}, err
	}
	at, unit, err := parseTimestamp(raw.Timestamp)
	if err != nil {
		return Envelope{}, err
	}
	if !isJSONObject(raw.Data) {
		return Envelope{}, invalidField("data", "must be an object")
	}
	var data struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(raw.Data, &data); err != nil {
		return Envelope{}, invalidField("data", "must be an object")
	}
	var id string
	if len(data.ID) == 0 || json.Unmarshal(data.ID, &id) != nil || id == "" {
		return Envelope{}, invalidField("data.id", "must be a non-empty string")
	}
	if err := checkID("data.id", id); err != nil {
		return Envelope{}, err
	}
	if len(raw.EventAttributes) > 0 && !isJSONNull(raw.EventAttributes) && !isJSONObject(raw.EventAttributes) {
		return Envelope{}, invalidField("event_attributes", "must be an object when present")
	}
	return Envelope{
		Type:            *raw.Type,
		InstanceID:      *raw.InstanceID,
		SubjectID:       id,
		Time:            at,
		TimestampUnit:   unit,
		Data:            raw.Data,
		EventAttributes: raw.EventAttributes,
	}, nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, string, error) {
	if len(raw) == 0 || isJSONNull(raw) {
		return time.Time{}, "", invalidField("timestamp", "is required")
	}
	var n json.Number
	// json.Number also accepts a quoted number; Clerk sends a bare one.
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return time.Time{}, "", invalidField("timestamp", "must be a number (unix milliseconds)")
	}
	v, err := n.Int64()
	if err != nil || v <= 0 {
		return time.Time{}, "", invalidField("timestamp", "must be a positive integer (unix milliseconds)")
	}
	if v < secondsCutoff {
		return time.Unix(v, 0).UTC(), UnitSeconds, nil
	}
	return time.UnixMilli(v).UTC(), UnitMilliseconds, nil
}

// checkID keeps identifiers short and printable: they become indexed text
// columns and log attributes.
func checkID(field, id string) error {
	if len(id) > maxIDLen {
		return invalidField(field, fmt.Sprintf("is longer than %d bytes", maxIDLen))
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return invalidField(field, "holds control characters or invalid UTF-8")
		}
	}
	return nil
}

func invalidField(field, problem string) *Error {
	return Errorf(EINVALID, "not_clerk_event", "not a Clerk event: %q %s", field, problem)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "ptr":
		return "string"
	default:
		return goKind
	}
}

func isJSONObject(raw json.RawMessage) bool {
	b := bytes.TrimLeft(raw, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
