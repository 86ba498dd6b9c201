package domain

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event types of reconciliation with Clerk's Backend API (source
// SourceClerkAPI). The users projection applies a snapshot with the rules
// of user.updated and a not-found like user.deleted.
const (
	// EventUserSnapshot carries a user object exactly as Clerk's Backend
	// API returned it (GET /v1/users), appended because the users read
	// model missed it or held an older version.
	EventUserSnapshot = "clerk.user.snapshot"
	// EventUserNotFound soft-deletes a user the read model holds but
	// Clerk no longer knows: absent from a complete listing, and
	// GET /v1/users/{id} answered 404. Its data says so (reason).
	EventUserNotFound = "clerk.user.not_found"
)

// ClerkAPIInstanceID is the instance_id of reconciliation entries: Clerk's
// Backend API does not name the instance in its answers.
const ClerkAPIInstanceID = "clerk-api"

// UserNotFoundReason is the reason recorded in every EventUserNotFound.
const UserNotFoundReason = "absent from a complete listing of GET /v1/users, and GET /v1/users/{id} answered 404"

// SnapshotKey is the idempotency key (svix_id) of the snapshot of user id
// at Clerk's updated_at: the same user version read twice, by two runs or
// two replicas, is appended once.
func SnapshotKey(id string, updatedAt time.Time) string {
	return "capi_" + id + "_" + strconv.FormatInt(updatedAt.UnixMilli(), 10)
}

// NotFoundKey is the idempotency key of the soft-delete of user id: a user
// Clerk no longer knows is deleted once.
func NotFoundKey(id string) string { return "capi_" + id + "_not_found" }

// NewUserSnapshotEntry builds the ledger entry of a user object read from
// Clerk's Backend API: source clerk-api, type clerk.user.snapshot, a
// Clerk-shaped envelope whose data is user byte for byte and whose
// timestamp is the user's updated_at, so the body is a function of what
// Clerk said alone (two runs build the same bytes). user must be a user
// object ParseUser accepts; receivedAt is when it was read.
func NewUserSnapshotEntry(user json.RawMessage, receivedAt time.Time) (LedgerEntry, User, error) {
	u, err := ParseSnapshotUser(user)
	if err != nil {
		return LedgerEntry{}, User{}, err
	}
	return UserSnapshotEntry(user, u, receivedAt), u, nil
}

// ParseSnapshotUser reads a user object of Clerk's Backend API as
// ParseUser does, and also requires the updated_at a snapshot is keyed by
// and an id that fits the ledger.
func ParseSnapshotUser(user json.RawMessage) (User, error) {
	u, err := ParseUser(user, time.Time{})
	if err != nil {
		return User{}, err
	}
	if u.UpdatedAt.IsZero() || u.UpdatedAt.UnixMilli() <= 0 {
		return User{}, Errorf(EINVALID, "not_clerk_user", "data.updated_at is missing")
	}
	if err := checkID("data.id", u.ClerkID); err != nil {
		return User{}, err
	}
	return u, nil
}

// UserSnapshotEntry is NewUserSnapshotEntry for a user object user that
// ParseSnapshotUser read as u.
func UserSnapshotEntry(user json.RawMessage, u User, receivedAt time.Time) LedgerEntry {
	at := u.UpdatedAt.UTC().Truncate(time.Millisecond)
	return clerkAPIEntry(EventUserSnapshot, SnapshotKey(u.ClerkID, at), u.ClerkID, user, at, receivedAt)
}

// UserNotFound is the data of an EventUserNotFound.
type UserNotFound struct {
	ClerkID string `json:"id"`
	Object  string `json:"object"`
	Reason  string `json:"reason"`
}

// NewUserNotFoundEntry builds the ledger entry that soft-deletes user id,
// which Clerk's Backend API answered 404 for at checkedAt after a complete
// listing without it. The deletion time is checkedAt.
func NewUserNotFoundEntry(id string, checkedAt time.Time) (LedgerEntry, error) {
	if err := checkID("data.id", id); err != nil || id == "" {
		return LedgerEntry{}, Errorf(EINVALID, "invalid_id", "user id is empty or not printable")
	}
	data, err := json.Marshal(UserNotFound{ClerkID: id, Object: "user", Reason: UserNotFoundReason})
	if err != nil {
		return LedgerEntry{}, err
	}
	at := checkedAt.UTC().Truncate(time.Millisecond)
	return clerkAPIEntry(EventUserNotFound, NotFoundKey(id), id, data, at, checkedAt), nil
}

// clerkAPIEntry wraps data, valid JSON, in an envelope.
func clerkAPIEntry(eventType, key, subject string, data json.RawMessage, at, receivedAt time.Time) LedgerEntry {
	// Built by hand, not with json.Marshal, which would rewrite data
	// (HTML-escaping &, < and > in URLs): data stays the API's bytes.
	body := make([]byte, 0, len(data)+128)
	body = append(body, `{"data":`...)
	body = append(body, data...)
	body = append(body, `,"instance_id":"`+ClerkAPIInstanceID+`","object":"event","timestamp":`...)
	body = strconv.AppendInt(body, at.UnixMilli(), 10)
	body = append(body, `,"type":"`+eventType+`"}`...)
	return LedgerEntry{
		SvixID:        key,
		Source:        SourceClerkAPI,
		EventType:     eventType,
		SubjectID:     subject,
		InstanceID:    ClerkAPIInstanceID,
		EventTime:     at,
		TimestampUnit: UnitMilliseconds,
		ReceivedAt:    receivedAt.UTC(),
		Payload:       body,
	}
}
