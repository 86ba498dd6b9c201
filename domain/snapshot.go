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

// Event types of the reconciliation of organizations and memberships
// (source SourceClerkAPI). The practices projection applies an
// organization snapshot with the rules of organization.updated and a
// not-found like organization.deleted; the memberships projection applies
// a membership snapshot with the rules of organizationMembership.updated
// and a not-found like organizationMembership.deleted.
const (
	// EventOrganizationSnapshot carries an organization object exactly
	// as GET /v1/organizations returned it.
	EventOrganizationSnapshot = "clerk.organization.snapshot"
	// EventOrganizationNotFound soft-deletes an organization absent from
	// a complete listing that GET /v1/organizations/{id} answered 404 for.
	EventOrganizationNotFound = "clerk.organization.not_found"
	// EventMembershipSnapshot carries an organization membership object
	// exactly as GET /v1/organizations/{id}/memberships returned it.
	EventMembershipSnapshot = "clerk.organizationMembership.snapshot"
	// EventMembershipNotFound soft-deletes a membership Clerk no longer
	// knows (see MembershipNotFoundReason).
	EventMembershipNotFound = "clerk.organizationMembership.not_found"
)

// OrganizationNotFoundReason is the reason recorded in every
// EventOrganizationNotFound.
const OrganizationNotFoundReason = "absent from a complete listing of GET /v1/organizations, and GET /v1/organizations/{id} answered 404"

// MembershipNotFoundReason is the reason recorded in every
// EventMembershipNotFound. Clerk's Backend API has no GET for one
// membership: a membership is named by its organization and its user, so
// the check is the listing of its organization filtered to its user.
const MembershipNotFoundReason = "absent from a complete listing of GET /v1/organizations/{org_id}/memberships, and GET /v1/organizations/{org_id}/memberships?user_id={user_id} answered 404 (organization gone) or without this membership"

// ParseSnapshotOrganization reads an organization object of Clerk's
// Backend API as ParseOrganization does, and also requires the updated_at
// a snapshot is keyed by and an id that fits the ledger.
func ParseSnapshotOrganization(org json.RawMessage) (Organization, error) {
	o, err := ParseOrganization(org, time.Time{})
	if err != nil {
		return Organization{}, err
	}
	if o.UpdatedAt.IsZero() || o.UpdatedAt.UnixMilli() <= 0 {
		return Organization{}, Errorf(EINVALID, "not_clerk_organization", "data.updated_at is missing")
	}
	if err := checkID("data.id", o.ClerkID); err != nil {
		return Organization{}, err
	}
	return o, nil
}

// OrganizationSnapshotEntry is the ledger entry of an organization object
// org that ParseSnapshotOrganization read as o, read at receivedAt: source
// clerk-api, type clerk.organization.snapshot, built as
// UserSnapshotEntry's.
func OrganizationSnapshotEntry(org json.RawMessage, o Organization, receivedAt time.Time) LedgerEntry {
	at := o.UpdatedAt.UTC().Truncate(time.Millisecond)
	return clerkAPIEntry(EventOrganizationSnapshot, SnapshotKey(o.ClerkID, at), o.ClerkID, org, at, receivedAt)
}

// ParseSnapshotMembership reads an organization membership object of
// Clerk's Backend API as ParseMembership does, and also requires the
// object to be a whole membership (not a deletion marker), the updated_at
// a snapshot is keyed by and an id that fits the ledger.
func ParseSnapshotMembership(membership json.RawMessage) (Membership, error) {
	m, err := ParseMembership(membership, time.Time{})
	if err != nil {
		return Membership{}, err
	}
	if !m.Profile {
		return Membership{}, Errorf(EINVALID, "not_clerk_membership", `data is not a Clerk organization membership object: field "object" must be "organization_membership"`)
	}
	if m.UpdatedAt.IsZero() || m.UpdatedAt.UnixMilli() <= 0 {
		return Membership{}, Errorf(EINVALID, "not_clerk_membership", "data.updated_at is missing")
	}
	if err := checkID("data.id", m.ClerkID); err != nil {
		return Membership{}, err
	}
	return m, nil
}

// MembershipSnapshotEntry is the ledger entry of a membership object that
// ParseSnapshotMembership read as m: source clerk-api, type
// clerk.organizationMembership.snapshot, built as UserSnapshotEntry's.
func MembershipSnapshotEntry(membership json.RawMessage, m Membership, receivedAt time.Time) LedgerEntry {
	at := m.UpdatedAt.UTC().Truncate(time.Millisecond)
	return clerkAPIEntry(EventMembershipSnapshot, SnapshotKey(m.ClerkID, at), m.ClerkID, membership, at, receivedAt)
}

// NewOrganizationNotFoundEntry builds the ledger entry that soft-deletes
// organization id, as NewUserNotFoundEntry does for a user.
func NewOrganizationNotFoundEntry(id string, checkedAt time.Time) (LedgerEntry, error) {
	return notFoundEntry(EventOrganizationNotFound, "organization", OrganizationNotFoundReason, id, checkedAt)
}

// NewMembershipNotFoundEntry builds the ledger entry that soft-deletes
// membership id, as NewUserNotFoundEntry does for a user.
func NewMembershipNotFoundEntry(id string, checkedAt time.Time) (LedgerEntry, error) {
	return notFoundEntry(EventMembershipNotFound, "organization_membership", MembershipNotFoundReason, id, checkedAt)
}

// NotFound is the data of a not-found entry (EventUserNotFound,
// EventOrganizationNotFound, EventMembershipNotFound). Its object is the
// kind of what was not found, under "not_found_object" for organizations
// and memberships so that their parsers never read it as the object
// itself.
type NotFound struct {
	ClerkID string `json:"id"`
	Object  string `json:"object"`
	Kind    string `json:"not_found_object"`
	Reason  string `json:"reason"`
}

func notFoundEntry(eventType, object, reason, id string, checkedAt time.Time) (LedgerEntry, error) {
	if err := checkID("data.id", id); err != nil || id == "" {
		return LedgerEntry{}, Errorf(EINVALID, "invalid_id", "%s id is empty or not printable", object)
	}
	data, err := json.Marshal(NotFound{ClerkID: id, Object: "not_found", Kind: object, Reason: reason})
	if err != nil {
		return LedgerEntry{}, err
	}
	at := checkedAt.UTC().Truncate(time.Millisecond)
	return clerkAPIEntry(eventType, NotFoundKey(id), id, data, at, checkedAt), nil
}
