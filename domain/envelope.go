package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
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

// ParseEnvelope checks that body is a Clerk event envelope: a JSON object
// with "object": "event", a dotted "type", an "instance_id", a positive
// numeric "timestamp" (milliseconds or seconds), a "data" object with a
// string "id", and, when present, an "event_attributes" object.
//
// Errors are *Error with code EINVALID and reason "body_not_json" or
// "not_clerk_event"; their messages name the field at fault and never quote
// the body's values, which may hold personal data.
func ParseEnvelope(body []byte) (Envelope, error) {
	if env, ok := readPlainEnvelope(body, nil, nil); ok {
		// Copies, as json.Unmarshal makes for json.RawMessage fields: the
		// envelope does not share the caller's buffer.
		env.Data, env.EventAttributes = bytes.Clone(env.Data), bytes.Clone(env.EventAttributes)
		return env, nil
	}
	return decodeEnvelope(body)
}

// ReadEnvelope is ParseEnvelope without the copies: the envelope's Data
// and EventAttributes may be slices of body, valid while body is and
// unchanged. For a caller that keeps body as it is, or only reads the
// envelope's facts (type, subject, instance, time): the delivery handler
// and the origin check, once per delivery each, where the copy of data
// was most of what parsing allocated.
func ReadEnvelope(body []byte) (Envelope, error) {
	if env, ok := readPlainEnvelope(body, nil, nil); ok {
		return env, nil
	}
	return decodeEnvelope(body)
}

// decodeEnvelope is ParseEnvelope read member by member with
// objectMembers: by exact, case-sensitive name, a duplicated name keeping
// its last value, as PostgreSQL's jsonb reads the same bytes. It is the
// reference: readPlainEnvelope only takes the bodies whose reading is
// obvious, and every other body, including every invalid one, comes here,
// so that acceptance and error messages are decided in one place.
func decodeEnvelope(body []byte) (Envelope, error) {
	members, err := objectMembers(body)
	if err != nil {
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntaxErr):
			return Envelope{}, Errorf(EINVALID, "body_not_json", "body is not valid JSON (syntax error at byte %d)", syntaxErr.Offset)
		case errors.As(err, &typeErr):
			return Envelope{}, Errorf(EINVALID, "not_clerk_event", "body is JSON but not an object: a Clerk event is a JSON object")
		default:
			return Envelope{}, Errorf(EINVALID, "body_not_json", "body is not valid JSON")
		}
	}
	// Kinds first, then values: a member of the wrong kind is named even
	// when another member's value is wrong too.
	var text [3]string
	for i, name := range []string{"object", "type", "instance_id"} {
		s, _, ok := stringMember(members[name])
		if !ok {
			return Envelope{}, invalidField(name, "must be a string")
		}
		text[i] = s
	}
	object, typ, instanceID := text[0], text[1], text[2]
	if object != "event" {
		return Envelope{}, invalidField("object", `must be "event"`)
	}
	if typ == "" {
		return Envelope{}, invalidField("type", "is required")
	}
	if len(typ) > maxTypeLen || !eventTypePattern.MatchString(typ) {
		return Envelope{}, invalidField("type", `must look like "user.created"`)
	}
	if instanceID == "" {
		return Envelope{}, invalidField("instance_id", "is required")
	}
	if err := checkID("instance_id", instanceID); err != nil {
		return Envelope{}, err
	}
	at, unit, err := parseTimestamp(members["timestamp"])
	if err != nil {
		return Envelope{}, err
	}
	rawData := members["data"]
	if !isJSONObject(rawData) {
		return Envelope{}, invalidField("data", "must be an object")
	}
	data, err := objectMembers(rawData)
	if err != nil {
		return Envelope{}, invalidField("data", "must be an object")
	}
	id, _, ok := stringMember(data["id"])
	if !ok || id == "" {
		return Envelope{}, invalidField("data.id", "must be a non-empty string")
	}
	if err := checkID("data.id", id); err != nil {
		return Envelope{}, err
	}
	attrs := members["event_attributes"]
	if len(attrs) > 0 && !isJSONNull(attrs) && !isJSONObject(attrs) {
		return Envelope{}, invalidField("event_attributes", "must be an object when present")
	}
	return Envelope{
		Type:            typ,
		InstanceID:      instanceID,
		SubjectID:       id,
		Time:            at,
		TimestampUnit:   unit,
		Data:            rawData,
		EventAttributes: attrs,
	}, nil
}

// ParseUserEvent reads the user of a user.created or user.updated event:
// it is ParseUser(env.Data, env.Time) for env, err := ParseEnvelope(body),
// with the same results and errors, but it checks and walks body once
// where the two calls would each read data again.
func ParseUserEvent(body []byte) (User, error) {
	var t userTokens
	if env, ok := readPlainEnvelope(body, userMembers[:], t[:]); ok {
		if u, ok := t.user(env.Time); ok {
			return u, nil
		}
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		return User{}, err
	}
	return ParseUser(env.Data, env.Time)
}

// envelopeMembers are the members of an envelope that ParseEnvelope reads,
// numbered by the constants below.
var envelopeMembers = [...]string{"object", "type", "instance_id", "timestamp", "data", "event_attributes"}

const (
	envObject = iota
	envType
	envInstanceID
	envTimestamp
	envData
	envEventAttributes
)

// readPlainEnvelope is ParseEnvelope in a single pass for bodies of the
// plain shape Clerk sends: after json.Valid, it walks the top-level object
// once, and data's members once, with no reflection and no copies but the
// results'. ok is false for every body it might read differently from
// decodeEnvelope, which then decides: every invalid or rejected body, and
// also valid ones with a duplicated member, an escaped member name, or a
// timestamp that is not a plain positive integer. Member names are
// compared exactly ("TYPE" is not "type"), as decodeEnvelope and jsonb do. Data
// and EventAttributes are slices of body. When names is non-nil,
// readPlainEnvelope also collects the members of data that names lists
// (see readData) into data, for the parser of the object data holds.
func readPlainEnvelope(body []byte, names []string, data [][]byte) (Envelope, bool) {
	if !json.Valid(body) {
		return Envelope{}, false
	}
	start := skipSpace(body, 0)
	if body[start] != '{' {
		return Envelope{}, false
	}
	var tok [len(envelopeMembers)][]byte
	var seen uint
	var id []byte
	obj := objectReader{b: body, i: start}
	for {
		key, more := obj.next()
		if !more {
			break
		}
		n, plain := memberIndex(key, envelopeMembers[:])
		switch {
		case !plain || n >= 0 && seen&(1<<n) != 0:
			return Envelope{}, false
		case n < 0:
			obj.skipValue()
		case n == envData:
			if body[obj.i] != '{' {
				return Envelope{}, false
			}
			dataStart := obj.i
			var ok bool
			if id, obj.i, ok = readData(body, dataStart, names, data); !ok {
				return Envelope{}, false
			}
			tok[n] = body[dataStart:obj.i]
		default:
			tok[n] = obj.value()
		}
		if n >= 0 {
			seen |= 1 << n
		}
	}
	if object, ok := stringBytes(tok[envObject]); !ok || string(object) != "event" {
		return Envelope{}, false
	}
	typ, ok := plainString(tok[envType])
	if !ok || typ == "" || len(typ) > maxTypeLen || !eventTypePattern.MatchString(typ) {
		return Envelope{}, false
	}
	instanceID, ok := plainString(tok[envInstanceID])
	if !ok || instanceID == "" || checkID("instance_id", instanceID) != nil {
		return Envelope{}, false
	}
	timestamp, ok := plainPositiveInt(tok[envTimestamp])
	if !ok || timestamp > maxMillis || tok[envData] == nil {
		return Envelope{}, false
	}
	subjectID, ok := plainString(id)
	if !ok || subjectID == "" || checkID("data.id", subjectID) != nil {
		return Envelope{}, false
	}
	attrs := tok[envEventAttributes]
	if attrs != nil && attrs[0] != '{' && string(attrs) != "null" {
		return Envelope{}, false
	}
	at, unit := eventTime(timestamp)
	return Envelope{
		Type:            typ,
		InstanceID:      instanceID,
		SubjectID:       subjectID,
		Time:            at,
		TimestampUnit:   unit,
		Data:            tok[envData],
		EventAttributes: attrs,
	}, true
}

func parseTimestamp(raw json.RawMessage) (time.Time, string, error) {
	if isNullOrAbsent(raw) {
		return time.Time{}, "", invalidField("timestamp", "is required")
	}
	// A quoted number is refused too: Clerk sends a bare one.
	if jsonKindOf(raw) != "number" {
		return time.Time{}, "", invalidField("timestamp", "must be a number (unix milliseconds)")
	}
	text := string(bytes.TrimSpace(raw))
	if !isIntegerLiteral(text) || text[0] == '-' {
		return time.Time{}, "", invalidField("timestamp", "must be a positive integer (unix milliseconds)")
	}
	v, err := strconv.ParseInt(text, 10, 64)
	switch {
	case err != nil || v > maxMillis:
		return time.Time{}, "", timestampOutOfRange()
	case v <= 0:
		return time.Time{}, "", invalidField("timestamp", "must be a positive integer (unix milliseconds)")
	}
	at, unit := eventTime(v)
	return at, unit, nil
}

// timestampOutOfRange refuses an envelope time that no database column or
// client could hold. Retrying cannot help, so it is a 4xx (a 5xx would have
// Svix retry it for a day and never store it).
func timestampOutOfRange() *Error {
	return Errorf(EINVALID, "timestamp_out_of_range",
		`not a Clerk event: "timestamp" is after the year 9999 (at most %d unix milliseconds)`, maxMillis)
}

// eventTime reads a positive "timestamp" in the unit its size implies.
func eventTime(v int64) (time.Time, string) {
	if v < secondsCutoff {
		return time.Unix(v, 0).UTC(), UnitSeconds
	}
	return time.UnixMilli(v).UTC(), UnitMilliseconds
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

func isJSONObject(raw json.RawMessage) bool {
	b := bytes.TrimLeft(raw, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// readData walks the data object that starts at b[start] and returns its
// "id" member and the index just past the object. When names is non-nil
// (its first name must be "id") it also collects the values of the members
// names lists into tok, by the same index (nil for those data lacks), so
// that ParseUserEvent, ParseOrganizationEvent and ParseMembershipEvent walk
// data once for the envelope and for their object. ok is false for a
// duplicated member or a member name that is not plain (see memberIndex).
func readData(b []byte, start int, names []string, tok [][]byte) (id []byte, end int, ok bool) {
	collect := names != nil
	if !collect {
		names = idMember
	}
	var seen uint
	obj := objectReader{b: b, i: start}
	for {
		key, more := obj.next()
		if !more {
			break
		}
		n, plain := memberIndex(key, names)
		if !plain || n >= 0 && seen&(1<<n) != 0 {
			return nil, 0, false
		}
		if n < 0 {
			obj.skipValue()
			continue
		}
		seen |= 1 << n
		v := obj.value()
		if n == 0 {
			id = v
		}
		if collect {
			tok[n] = v
		}
	}
	return id, obj.i, true
}

// idMember is what readData reads of data for the envelope alone.
var idMember = []string{"id"}

// The readers below walk JSON that json.Valid has accepted: they check
// nothing, and on invalid input their results are meaningless.
