package domain

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Event types the users read model applies. Every other type is kept in
// the ledger and skipped by the users projection.
const (
	EventUserCreated = "user.created"
	EventUserUpdated = "user.updated"
	EventUserDeleted = "user.deleted"
	// EventUserAccessChanged is webhookd's own event for a change of a
	// user's role or practice (see `webhookd users assign`).
	EventUserAccessChanged = "webhookd.user.access_changed"
	// EventProjectionRetried is webhookd's own event for an operator
	// retrying skipped ledger entries (`webhookd projections retry`).
	EventProjectionRetried = "webhookd.projection.retried"
)

// DefaultRole is the role of a user nobody assigned one to, as in the
// original route.
const DefaultRole = "USER"

// User is what the users read model takes from a Clerk user object.
type User struct {
	ClerkID string
	// Email is the primary address: the one whose id is
	// primary_email_address_id, wherever it sits in the list. Empty when
	// the user has none.
	Email     string
	FirstName string
	LastName  string
	// Name is first and last name joined by a space, as the original route
	// stored it.
	Name      string
	ImageURL  string
	CreatedAt time.Time
	// UpdatedAt is Clerk's updated_at: the projection's ordering key.
	UpdatedAt time.Time
}

// ParseUser reads the data of a user.created or user.updated event.
// fallback is used for updated_at (and created_at) when Clerk left them
// out: the event's own time.
func ParseUser(data json.RawMessage, fallback time.Time) (User, error) {
	if json.Valid(data) {
		if start := skipSpace(data, 0); data[start] == '{' {
			var t userTokens
			if _, _, ok := readData(data, start, userMembers[:], t[:]); ok {
				if u, ok := t.user(fallback); ok {
					return u, nil
				}
			}
		}
	}
	return decodeUser(data, fallback)
}

// decodeUser is ParseUser read member by member with objectMembers (exact
// names, the last of duplicated names wins, as jsonb reads them): the
// reference, which decides every user object userTokens.user does not read
// plainly, and gives every error.
func decodeUser(data json.RawMessage, fallback time.Time) (User, error) {
	members, err := objectMembers(data)
	if err != nil {
		return User{}, Errorf(EINVALID, "not_clerk_user", "data is not a Clerk user object: %s", describeJSONError(err))
	}
	id, _, ok := stringMember(members["id"])
	if !ok {
		return User{}, notUser("id", "a string")
	}
	if id == "" {
		return User{}, Errorf(EINVALID, "not_clerk_user", "data.id is empty")
	}
	var text [4]string
	for i, name := range []string{"first_name", "last_name", "image_url", "primary_email_address_id"} {
		if text[i], _, ok = stringMember(members[name]); !ok {
			return User{}, notUser(name, "a string")
		}
	}
	out := User{ClerkID: id, FirstName: text[0], LastName: text[1], ImageURL: text[2]}
	out.Name = strings.TrimSpace(out.FirstName + " " + out.LastName)
	if out.CreatedAt, ok = millisMember(members["created_at"], fallback); !ok {
		return User{}, notUser("created_at", "an integer (unix milliseconds)")
	}
	if out.UpdatedAt, ok = millisMember(members["updated_at"], fallback); !ok {
		return User{}, notUser("updated_at", "an integer (unix milliseconds)")
	}
	_, hasPrimary, _ := stringMember(members["primary_email_address_id"])
	if out.Email, err = primaryEmail(members["email_addresses"], text[3], hasPrimary); err != nil {
		return User{}, err
	}
	return out, nil
}

// primaryEmail returns the email_address of the first element of list
// whose id is primaryID, "" when there is none or hasPrimary is false.
// Every element is checked, as the single pass checks them.
func primaryEmail(list json.RawMessage, primaryID string, hasPrimary bool) (string, error) {
	if isNullOrAbsent(list) {
		return "", nil
	}
	var elems []json.RawMessage
	if jsonKindOf(list) != "array" || json.Unmarshal(list, &elems) != nil {
		return "", notUser("email_addresses", "an array")
	}
	email, found := "", false
	for _, raw := range elems {
		if isJSONNull(raw) {
			// A null element reads as an address with neither id nor
			// email_address.
			raw = json.RawMessage(`{}`)
		}
		if jsonKindOf(raw) != "object" {
			return "", notUser("email_addresses", "an array of objects")
		}
		m, err := objectMembers(raw)
		if err != nil {
			return "", notUser("email_addresses", "an array of objects")
		}
		id, _, ok1 := stringMember(m["id"])
		address, _, ok2 := stringMember(m["email_address"])
		switch {
		case !ok1:
			return "", notUser("email_addresses.id", "a string")
		case !ok2:
			return "", notUser("email_addresses.email_address", "a string")
		}
		if hasPrimary && !found && id == primaryID {
			email, found = address, true
		}
	}
	return email, nil
}

func notUser(field, kind string) *Error {
	return Errorf(EINVALID, "not_clerk_user", "data is not a Clerk user object: field %q must be %s", field, kind)
}

// userMembers are the members of a Clerk user object that ParseUser reads,
// numbered as userTokens holds them ("id" first, as readData wants).
var userMembers = [...]string{"id", "first_name", "last_name", "image_url", "primary_email_address_id", "email_addresses", "created_at", "updated_at"}

const (
	userID = iota
	userFirstName
	userLastName
	userImageURL
	userPrimaryEmailAddressID
	userEmailAddresses
	userCreatedAt
	userUpdatedAt
)

// userTokens holds the raw JSON values of userMembers in a user object,
// nil for those it lacks.
type userTokens [len(userMembers)][]byte

// emailMembers are the members of an email address ParseUser reads.
var emailMembers = []string{"id", "email_address"}

// user is decodeUser's reading of t, or ok false where decodeUser might
// read it otherwise or reject it (see readPlainEnvelope).
func (t *userTokens) user(fallback time.Time) (u User, ok bool) {
	id, ok := stringBytes(t[userID])
	if !ok || len(id) == 0 {
		return User{}, false
	}
	first, ok1 := optionalString(t[userFirstName])
	last, ok2 := optionalString(t[userLastName])
	image, ok3 := optionalString(t[userImageURL])
	created, ok4 := optionalMillis(t[userCreatedAt], fallback)
	updated, ok5 := optionalMillis(t[userUpdatedAt], fallback)
	email, ok6 := t.primaryEmail()
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return User{}, false
	}
	return User{
		ClerkID:   string(id),
		Email:     email,
		FirstName: first,
		LastName:  last,
		Name:      strings.TrimSpace(first + " " + last),
		ImageURL:  image,
		CreatedAt: created,
		UpdatedAt: updated,
	}, true
}

// primaryEmail returns the email_address of the first element of
// email_addresses whose id is primary_email_address_id, "" if there is
// none or primary_email_address_id is null or absent.
func (t *userTokens) primaryEmail() (string, bool) {
	primary := t[userPrimaryEmailAddressID]
	hasPrimary := primary != nil && string(primary) != "null"
	primaryID, ok := optionalStringBytes(primary)
	if !ok {
		return "", false
	}
	list := t[userEmailAddresses]
	if list == nil || string(list) == "null" {
		return "", true
	}
	if list[0] != '[' {
		return "", false
	}
	var email []byte
	found := false
	arr := arrayReader{b: list}
	for arr.next() {
		if list[arr.i] != '{' {
			return "", false
		}
		var tok [2][]byte
		var seen uint
		obj := objectReader{b: list, i: arr.i}
		for {
			key, more := obj.next()
			if !more {
				break
			}
			n, plain := memberIndex(key, emailMembers)
			if !plain || n >= 0 && seen&(1<<n) != 0 {
				return "", false
			}
			if n < 0 {
				obj.skipValue()
				continue
			}
			seen |= 1 << n
			tok[n] = obj.value()
		}
		arr.i = obj.i
		id, ok1 := optionalStringBytes(tok[0])
		address, ok2 := optionalStringBytes(tok[1])
		if !ok1 || !ok2 {
			return "", false
		}
		if hasPrimary && !found && bytes.Equal(id, primaryID) {
			email, found = address, true
		}
	}
	return string(email), true
}

// optionalStringBytes is stringBytes for a member that may be null or
// absent, which read as "".
func optionalStringBytes(tok []byte) ([]byte, bool) {
	if tok == nil || string(tok) == "null" {
		return nil, true
	}
	return stringBytes(tok)
}

// optionalString is optionalStringBytes as a string.
func optionalString(tok []byte) (string, bool) {
	text, ok := optionalStringBytes(tok)
	return string(text), ok
}

// optionalMillis reads a member holding unix milliseconds, or null, or
// absent: then it is fallback, as it is for a time after the year 9999
// (see millisMember).
func optionalMillis(tok []byte, fallback time.Time) (time.Time, bool) {
	if tok == nil || string(tok) == "null" {
		return fallback, true
	}
	ms, ok := plainPositiveInt(tok)
	if !ok {
		return time.Time{}, false
	}
	if ms > maxMillis {
		return fallback, true // see millisMember
	}
	return time.UnixMilli(ms).UTC(), true
}

// describeJSONError names where decoding failed without quoting values.
func describeJSONError(err error) string {
	if _, ok := err.(*json.UnmarshalTypeError); ok {
		return "it must be an object"
	}
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "malformed JSON"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// AccessChange is the data of an EventUserAccessChanged event. A nil field
// is left as it is; PracticeID set to "" clears the practice.
type AccessChange struct {
	ClerkID    string  `json:"id"`
	Role       *string `json:"role,omitempty"`
	PracticeID *string `json:"practice_id,omitempty"`
	// Actor is who made the change (operator name from the command line,
	// or the OS user).
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

var rolePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)

// Validate checks an access change before it is recorded.
func (c AccessChange) Validate() error {
	if c.ClerkID == "" {
		return Errorf(EINVALID, "invalid_access_change", "a Clerk user id is required")
	}
	if err := checkID("clerk id", c.ClerkID); err != nil {
		return err
	}
	if c.Role == nil && c.PracticeID == nil {
		return Errorf(EINVALID, "invalid_access_change", "nothing to change: give a role, a practice, or both")
	}
	if c.Role != nil && !rolePattern.MatchString(*c.Role) {
		return Errorf(EINVALID, "invalid_access_change", "role must be upper-case letters, digits and _ (e.g. USER, ADMIN), at most 32")
	}
	if c.PracticeID != nil {
		if err := checkID("practice id", *c.PracticeID); err != nil {
			return err
		}
	}
	if strings.TrimSpace(c.Actor) == "" {
		return Errorf(EINVALID, "invalid_access_change", "the actor (who makes the change) is required")
	}
	return nil
}

// ParseAccessChange reads the data of an EventUserAccessChanged event, by
// exact member names like every payload (see objectMembers).
func ParseAccessChange(data json.RawMessage) (AccessChange, error) {
	members, err := objectMembers(data)
	if err != nil {
		return AccessChange{}, Errorf(EINVALID, "invalid_access_change", "data is not an access change: %s", describeJSONError(err))
	}
	var c AccessChange
	var text [5]string
	var present [5]bool
	for i, name := range []string{"id", "role", "practice_id", "actor", "reason"} {
		var ok bool
		if text[i], present[i], ok = stringMember(members[name]); !ok {
			return AccessChange{}, Errorf(EINVALID, "invalid_access_change", "data is not an access change: field %q must be a string", name)
		}
	}
	c.ClerkID, c.Actor, c.Reason = text[0], text[3], text[4]
	if present[1] {
		c.Role = &text[1]
	}
	if present[2] {
		c.PracticeID = &text[2]
	}
	return c, c.Validate()
}

// NewInternalEntry builds the ledger entry of an event webhookd records
// itself (source "webhookd"): a Clerk-shaped envelope, so the ledger, the
// projections and exports treat it like any other event, with svix_id
// "whd_" followed by 32 hex digits.
func NewInternalEntry(eventType, subjectID string, data any, now time.Time) (LedgerEntry, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return LedgerEntry{}, fmt.Errorf("encode %s event: %w", eventType, err)
	}
	now = now.UTC()
	body, err := json.Marshal(map[string]any{
		"object":      "event",
		"type":        eventType,
		"instance_id": InternalInstanceID,
		"timestamp":   now.UnixMilli(),
		"data":        json.RawMessage(raw),
	})
	if err != nil {
		return LedgerEntry{}, fmt.Errorf("encode %s event: %w", eventType, err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return LedgerEntry{}, err
	}
	return LedgerEntry{
		SvixID:        "whd_" + hex.EncodeToString(id[:]),
		Source:        SourceWebhookd,
		EventType:     eventType,
		SubjectID:     subjectID,
		InstanceID:    InternalInstanceID,
		EventTime:     now.Truncate(time.Millisecond),
		TimestampUnit: UnitMilliseconds,
		ReceivedAt:    now,
		Payload:       body,
	}, nil
}

// InternalInstanceID is the instance_id of webhookd's own events.
const InternalInstanceID = "webhookd"
