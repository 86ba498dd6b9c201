package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// PracticeState is one row of the practices read model: a Clerk
// organization.
type PracticeState struct {
	ClerkOrgID string
	Name       *string
	Slug       *string
	ImageURL   *string
	CreatedAt  *time.Time
	UpdatedAt  *time.Time
	DeletedAt  *time.Time
	// ClerkUpdatedAt is Clerk's updated_at of the organization applied:
	// the last-writer-wins key.
	ClerkUpdatedAt *time.Time
	// LastOffset is the ledger offset of the last entry that changed the
	// row.
	LastOffset int64
}

// PracticeEvent is a ledger entry decoded for the practices projection.
type PracticeEvent struct {
	Offset     int64
	ClerkOrgID string
	// Deleted is an organization.deleted; Time is then Clerk's event time.
	Deleted bool
	Time    time.Time
	Org     domain.Organization
}

// DecodePracticeEvent decodes e for the practices projection; ok is false
// for entries of other types.
//
// Reconciliation's entries (source clerk-api) are read like Clerk's: an
// organization snapshot as organization.updated (Clerk's updated_at
// decides, so an older snapshot changes nothing), a not-found as
// organization.deleted.
func DecodePracticeEvent(e domain.LedgerEntry) (ev PracticeEvent, ok bool, err error) {
	ev = PracticeEvent{Offset: e.Offset, ClerkOrgID: e.SubjectID, Time: e.EventTime}
	switch {
	case e.Source == domain.SourceClerk && (e.EventType == domain.EventOrganizationCreated || e.EventType == domain.EventOrganizationUpdated),
		e.Source == domain.SourceClerkAPI && e.EventType == domain.EventOrganizationSnapshot:
		if ev.Org, err = domain.ParseOrganizationEvent(e.Payload); err != nil {
			return ev, false, err
		}
		ev.ClerkOrgID = ev.Org.ClerkID
	case e.Source == domain.SourceClerk && e.EventType == domain.EventOrganizationDeleted,
		e.Source == domain.SourceClerkAPI && e.EventType == domain.EventOrganizationNotFound:
		ev.Deleted = true
	default:
		return ev, false, nil
	}
	return ev, true, nil
}

// Apply applies ev to s and reports whether s changed, with the rules of
// users: last writer wins on Clerk's updated_at (ties: the later ledger
// entry), created_at keeps the earliest value, deleted_at the earliest
// deletion and nothing clears it (a delete that arrives first leaves a
// tombstone that a late create fills in but never revives).
func (s *PracticeState) Apply(ev PracticeEvent) bool {
	if ev.Deleted {
		earliest(&s.DeletedAt, ev.Time)
	} else {
		o := ev.Org
		if !newerOrSame(s.ClerkUpdatedAt, o.UpdatedAt) {
			return false
		}
		s.Name, s.Slug, s.ImageURL = projectedText(o.Name), projectedText(o.Slug), projectedText(o.ImageURL)
		earliest(&s.CreatedAt, o.CreatedAt)
		s.UpdatedAt, s.ClerkUpdatedAt = &o.UpdatedAt, &o.UpdatedAt
	}
	s.LastOffset = max(s.LastOffset, ev.Offset)
	return true
}

// Practices projects Clerk organization events, and reconciliation's
// organization snapshots and not-founds (source clerk-api), into the
// practices table.
var Practices = NewModel(ModelSpec[PracticeState, PracticeEvent]{
	Name:  "practices",
	Table: "practices",
	Columns: []Column{{"clerk_org_id", "text"}, {"name", "text"}, {"slug", "text"}, {"image_url", "text"},
		{"created_at", "timestamptz"}, {"updated_at", "timestamptz"}, {"deleted_at", "timestamptz"},
		{"clerk_updated_at", "timestamptz"}, {"last_offset", "bigint"}},
	EventTypes: []string{domain.EventOrganizationCreated, domain.EventOrganizationUpdated, domain.EventOrganizationDeleted,
		domain.EventOrganizationSnapshot, domain.EventOrganizationNotFound},
	Decode: DecodePracticeEvent,
	KeyOf:  func(ev PracticeEvent) string { return ev.ClerkOrgID },
	New:    func(key string) PracticeState { return PracticeState{ClerkOrgID: key} },
	Apply:  (*PracticeState).Apply,
	Values: func(s *PracticeState) []any {
		return []any{s.ClerkOrgID, s.Name, s.Slug, s.ImageURL, s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset}
	},
	Fields: func(s *PracticeState) []any {
		return []any{&s.ClerkOrgID, &s.Name, &s.Slug, &s.ImageURL, &s.CreatedAt, &s.UpdatedAt, &s.DeletedAt, &s.ClerkUpdatedAt, &s.LastOffset}
	},
})

// States of a practice id in the practices table, for commands that
// refer to one (`webhookd users assign --practice`).
const (
	PracticeActive  = "active"
	PracticeDeleted = "deleted"
	PracticeUnknown = "unknown"
)

// LookupPractice reports whether id is an active, deleted or unknown
// practice in the practices table (as far as the practices projection has
// got).
func LookupPractice(ctx context.Context, q eventstore.Querier, id string) (string, error) {
	rows, err := q.Query(ctx, `SELECT deleted_at IS NOT NULL FROM `+Practices.Table()+` WHERE clerk_org_id = $1`, id)
	if err != nil {
		return "", fmt.Errorf("look up practice: %w", err)
	}
	deleted, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	switch {
	case err != nil:
		return "", fmt.Errorf("look up practice: %w", err)
	case len(deleted) == 0:
		return PracticeUnknown, nil
	case deleted[0]:
		return PracticeDeleted, nil
	}
	return PracticeActive, nil
}
