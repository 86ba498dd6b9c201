package projections

import (
	"time"

	"github.com/webhookd/webhookd/domain"
)

// UserState is one row of the users read model. The projection rules live
// in its Apply method alone: the live projection loads a row, applies an
// entry and stores it, and a rebuild folds the whole ledger in memory with
// the same method, so the two cannot disagree.
type UserState struct {
	ClerkID    string
	Email      *string
	FirstName  *string
	LastName   *string
	Name       *string
	ImageURL   *string
	Role       string
	PracticeID *string
	CreatedAt  *time.Time
	UpdatedAt  *time.Time
	DeletedAt  *time.Time
	// ClerkUpdatedAt is Clerk's updated_at of the profile applied: the
	// last-writer-wins key.
	ClerkUpdatedAt *time.Time
	// LastOffset is the ledger offset of the last entry that changed the
	// row.
	LastOffset int64
}

// NewUserState is the state of a user no event has touched yet.
func NewUserState(clerkID string) UserState {
	return UserState{ClerkID: clerkID, Role: domain.DefaultRole}
}

// UserEvent is a ledger entry decoded for the users projection.
type UserEvent struct {
	Offset  int64
	ClerkID string
	Kind    UserEventKind
	// Time is Clerk's event time (the deletion time of a user.deleted).
	Time   time.Time
	User   domain.User
	Access domain.AccessChange
}

// UserEventKind says what a UserEvent does.
type UserEventKind int

// Kinds of user events.
const (
	UserIgnored UserEventKind = iota
	UserProfile
	UserDeleted
	UserAccess
)

// DecodeUserEvent decodes e for the users projection. Entries of other
// types come back with Kind UserIgnored.
func DecodeUserEvent(e domain.LedgerEntry) (UserEvent, error) {
	ev := UserEvent{Offset: e.Offset, ClerkID: e.SubjectID, Time: e.EventTime}
	switch {
	case e.Source == domain.SourceClerk && (e.EventType == domain.EventUserCreated || e.EventType == domain.EventUserUpdated):
		var err error
		if ev.User, err = domain.ParseUserEvent(e.Payload); err != nil {
			return ev, err
		}
		ev.Kind, ev.ClerkID = UserProfile, ev.User.ClerkID
	case e.Source == domain.SourceClerkAPI && e.EventType == domain.EventUserSnapshot:
		// A user as Clerk's Backend API returned it: the rules of
		// user.updated (Clerk's updated_at decides).
		var err error
		if ev.User, err = domain.ParseUserEvent(e.Payload); err != nil {
			return ev, err
		}
		ev.Kind, ev.ClerkID = UserProfile, ev.User.ClerkID
	case e.Source == domain.SourceClerk && e.EventType == domain.EventUserDeleted,
		e.Source == domain.SourceClerkAPI && e.EventType == domain.EventUserNotFound:
		ev.Kind = UserDeleted
	case e.Source == domain.SourceWebhookd && e.EventType == domain.EventUserAccessChanged:
		env, err := domain.ParseEnvelope(e.Payload)
		if err != nil {
			return ev, err
		}
		if ev.Access, err = domain.ParseAccessChange(env.Data); err != nil {
			return ev, err
		}
		ev.Kind, ev.ClerkID = UserAccess, ev.Access.ClerkID
	}
	return ev, nil
}

// Apply applies ev to s and reports whether s changed. Events must come in
// ledger order; the rules make the result independent of the order Clerk
// sent them in:
//   - profile: last writer wins on Clerk's updated_at; a tie goes to the
//     later ledger entry; created_at keeps the earliest value seen;
//   - deleted: deleted_at is the earliest deletion time seen, and nothing
//     clears it (a late create or update may fill in the profile the
//     deleted row keeps, but never revives the user);
//   - access: role and practice change only through webhookd's own
//     events, in ledger order; Clerk events never touch them.
func (s *UserState) Apply(ev UserEvent) bool {
	switch ev.Kind {
	case UserProfile:
		u := ev.User
		if !newerOrSame(s.ClerkUpdatedAt, u.UpdatedAt) {
			return false
		}
		s.Email, s.FirstName, s.LastName = projectedText(u.Email), projectedText(u.FirstName), projectedText(u.LastName)
		s.Name, s.ImageURL = projectedText(u.Name), projectedText(u.ImageURL)
		earliest(&s.CreatedAt, u.CreatedAt)
		s.UpdatedAt, s.ClerkUpdatedAt = &u.UpdatedAt, &u.UpdatedAt
	case UserDeleted:
		earliest(&s.DeletedAt, ev.Time)
	case UserAccess:
		if ev.Access.Role != nil {
			s.Role = *ev.Access.Role
		}
		if ev.Access.PracticeID != nil {
			s.PracticeID = nonEmpty(*ev.Access.PracticeID)
		}
	default:
		return false
	}
	s.LastOffset = max(s.LastOffset, ev.Offset)
	return true
}
