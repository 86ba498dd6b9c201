package projections

import "github.com/webhookd/webhookd/domain"

// Users projects Clerk user events, reconciliation's snapshots and
// not-founds (source clerk-api) and webhookd's access changes into the
// users table, with the rules of UserState.Apply.
var Users = NewModel(ModelSpec[UserState, UserEvent]{
	Name:  "users",
	Table: "users",
	Columns: []Column{{"clerk_id", "text"}, {"email", "text"}, {"first_name", "text"}, {"last_name", "text"},
		{"name", "text"}, {"image_url", "text"}, {"role", "text"}, {"practice_id", "text"},
		{"created_at", "timestamptz"}, {"updated_at", "timestamptz"}, {"deleted_at", "timestamptz"},
		{"clerk_updated_at", "timestamptz"}, {"last_offset", "bigint"}},
	EventTypes: []string{domain.EventUserCreated, domain.EventUserUpdated, domain.EventUserDeleted, domain.EventUserAccessChanged,
		domain.EventUserSnapshot, domain.EventUserNotFound},
	Decode: func(e domain.LedgerEntry) (UserEvent, bool, error) {
		ev, err := DecodeUserEvent(e)
		return ev, err == nil && ev.Kind != UserIgnored, err
	},
	KeyOf: func(ev UserEvent) string { return ev.ClerkID },
	New:   NewUserState,
	Apply: (*UserState).Apply,
	Values: func(s *UserState) []any {
		return []any{s.ClerkID, s.Email, s.FirstName, s.LastName, s.Name, s.ImageURL, s.Role, s.PracticeID,
			s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset}
	},
	Fields: func(s *UserState) []any {
		return []any{&s.ClerkID, &s.Email, &s.FirstName, &s.LastName, &s.Name, &s.ImageURL, &s.Role, &s.PracticeID,
			&s.CreatedAt, &s.UpdatedAt, &s.DeletedAt, &s.ClerkUpdatedAt, &s.LastOffset}
	},
})
