package projections

import (
	"time"

	"github.com/webhookd/webhookd/domain"
)

// MembershipState is one row of the memberships read model: a Clerk
// organization membership (a person's place in a practice).
type MembershipState struct {
	ClerkMembershipID string
	ClerkOrgID        *string
	ClerkUserID       *string
	Role              *string
	CreatedAt         *time.Time
	UpdatedAt         *time.Time
	DeletedAt         *time.Time
	// ClerkUpdatedAt is Clerk's updated_at of the membership applied: the
	// last-writer-wins key.
	ClerkUpdatedAt *time.Time
	// LastOffset is the ledger offset of the last entry that changed the
	// row.
	LastOffset int64
}

// MembershipEvent is a ledger entry decoded for the memberships
// projection.
type MembershipEvent struct {
	Offset int64
	// Deleted is an organizationMembership.deleted; Time is then Clerk's
	// event time.
	Deleted    bool
	Time       time.Time
	Membership domain.Membership
}

// DecodeMembershipEvent decodes e for the memberships projection; ok is
// false for entries of other types.
//
// Reconciliation's entries (source clerk-api) are read like Clerk's: a
// membership snapshot as organizationMembership.updated (Clerk's
// updated_at decides, so an older snapshot changes nothing), a not-found
// as a deletion that carries no fields (the membership is its subject).
func DecodeMembershipEvent(e domain.LedgerEntry) (ev MembershipEvent, ok bool, err error) {
	switch {
	case e.Source == domain.SourceClerk && (e.EventType == domain.EventMembershipCreated || e.EventType == domain.EventMembershipUpdated || e.EventType == domain.EventMembershipDeleted),
		e.Source == domain.SourceClerkAPI && e.EventType == domain.EventMembershipSnapshot:
	case e.Source == domain.SourceClerkAPI && e.EventType == domain.EventMembershipNotFound:
		if e.SubjectID == "" {
			return ev, false, domain.Errorf(domain.EINVALID, "not_clerk_membership", "a membership not-found names no membership")
		}
		return MembershipEvent{Offset: e.Offset, Time: e.EventTime, Deleted: true, Membership: domain.Membership{ClerkID: e.SubjectID}}, true, nil
	default:
		return ev, false, nil
	}
	ev = MembershipEvent{Offset: e.Offset, Time: e.EventTime, Deleted: e.EventType == domain.EventMembershipDeleted}
	if ev.Membership, err = domain.ParseMembershipEvent(e.Payload); err != nil {
		return ev, false, err
	}
	if !ev.Membership.Profile && !ev.Deleted {
		return ev, false, domain.Errorf(domain.EINVALID, "not_clerk_membership",
			`data is not a Clerk organization membership object: field "object" must be "organization_membership"`)
	}
	return ev, true, nil
}

// Apply applies ev to s and reports whether s changed, with the rules of
// users (see PracticeState.Apply). Clerk's organizationMembership.deleted
// carries the whole membership: its fields are applied like an update's
// (last writer wins), and deleted_at is set to the earliest deletion seen.
func (s *MembershipState) Apply(ev MembershipEvent) bool {
	changed := false
	if m := ev.Membership; m.Profile && newerOrSame(s.ClerkUpdatedAt, m.UpdatedAt) {
		s.ClerkOrgID, s.ClerkUserID, s.Role = projectedText(m.OrgID), projectedText(m.UserID), projectedText(m.Role)
		earliest(&s.CreatedAt, m.CreatedAt)
		s.UpdatedAt, s.ClerkUpdatedAt = &m.UpdatedAt, &m.UpdatedAt
		changed = true
	}
	if ev.Deleted {
		earliest(&s.DeletedAt, ev.Time)
		changed = true
	}
	if changed {
		s.LastOffset = max(s.LastOffset, ev.Offset)
	}
	return changed
}

// Memberships projects Clerk organization membership events, and
// reconciliation's membership snapshots and not-founds (source
// clerk-api), into the memberships table.
var Memberships = NewModel(ModelSpec[MembershipState, MembershipEvent]{
	Name:  "memberships",
	Table: "memberships",
	Columns: []Column{{"clerk_membership_id", "text"}, {"clerk_org_id", "text"}, {"clerk_user_id", "text"}, {"role", "text"},
		{"created_at", "timestamptz"}, {"updated_at", "timestamptz"}, {"deleted_at", "timestamptz"},
		{"clerk_updated_at", "timestamptz"}, {"last_offset", "bigint"}},
	EventTypes: []string{domain.EventMembershipCreated, domain.EventMembershipUpdated, domain.EventMembershipDeleted,
		domain.EventMembershipSnapshot, domain.EventMembershipNotFound},
	Decode: DecodeMembershipEvent,
	KeyOf:  func(ev MembershipEvent) string { return ev.Membership.ClerkID },
	New:    func(key string) MembershipState { return MembershipState{ClerkMembershipID: key} },
	Apply:  (*MembershipState).Apply,
	Values: func(s *MembershipState) []any {
		return []any{s.ClerkMembershipID, s.ClerkOrgID, s.ClerkUserID, s.Role, s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset}
	},
	Fields: func(s *MembershipState) []any {
		return []any{&s.ClerkMembershipID, &s.ClerkOrgID, &s.ClerkUserID, &s.Role, &s.CreatedAt, &s.UpdatedAt, &s.DeletedAt, &s.ClerkUpdatedAt, &s.LastOffset}
	},
})
