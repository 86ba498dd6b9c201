package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
)

// Redacted stands in for a personal value not revealed.
const Redacted = redact.Redacted

// personalFields are the users columns that hold personal data.
var personalFields = []string{"email", "first_name", "last_name", "name", "image_url"}

// User is a user's current row with its practice and memberships.
// Personal fields hold Redacted unless revealed.
type User struct {
	ClerkID     string       `json:"clerk_id"`
	Email       *string      `json:"email"`
	FirstName   *string      `json:"first_name"`
	LastName    *string      `json:"last_name"`
	Name        *string      `json:"name"`
	ImageURL    *string      `json:"image_url"`
	Role        string       `json:"role"`
	PracticeID  *string      `json:"practice_id"`
	Practice    *Practice    `json:"practice"`
	Memberships []Membership `json:"memberships"`
	CreatedAt   *time.Time   `json:"created_at"`
	UpdatedAt   *time.Time   `json:"updated_at"`
	DeletedAt   *time.Time   `json:"deleted_at"`
	Revealed    bool         `json:"revealed"`
}

// Practice is a row of the practices read model (names of organizations
// are not personal data).
type Practice struct {
	ID        string     `json:"id"`
	Name      *string    `json:"name"`
	Slug      *string    `json:"slug"`
	DeletedAt *time.Time `json:"deleted_at"`
}

// Membership is a row of the memberships read model.
type Membership struct {
	ID         string     `json:"id"`
	PracticeID *string    `json:"practice_id"`
	Role       *string    `json:"role"`
	CreatedAt  *time.Time `json:"created_at"`
	DeletedAt  *time.Time `json:"deleted_at"`
}

// SearchResult is one user a search found: no personal data, only which
// fields matched.
type SearchResult struct {
	ClerkID    string     `json:"clerk_id"`
	Role       string     `json:"role"`
	PracticeID *string    `json:"practice_id"`
	DeletedAt  *time.Time `json:"deleted_at"`
	Matched    []string   `json:"matched"`
}

// searchLimit bounds the users one search returns.
const searchLimit = 20

// Users reads the users, practices and memberships read models and the
// ledger.
type Users struct {
	Pool *pgxpool.Pool
}

// validQuery checks a search query: 2 to 200 characters, no control
// characters.
func validQuery(q string) error {
	q = strings.TrimSpace(q)
	if len(q) < 2 || utf8.RuneCountInString(q) > 200 || strings.ContainsFunc(q, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return domain.Errorf(domain.EINVALID, "invalid_query", "a search is 2 to 200 printable characters: a Clerk user id, or the start of an email address or name")
	}
	return nil
}

// Search finds users by the start of their Clerk id (case-sensitive) or
// of their email,
// name, first or last name (case-insensitive), at most searchLimit.
func (u *Users) Search(ctx context.Context, q string) ([]SearchResult, error) {
	if err := validQuery(q); err != nil {
		return nil, err
	}
	q = strings.TrimSpace(q)
	prefix := likeEscape(strings.ToLower(q)) + "%"
	idPrefix := likeEscape(q) + "%"
	rows, err := u.Pool.Query(ctx, `
		SELECT clerk_id, role, practice_id, deleted_at,
		       clerk_id LIKE $1, left(lower(email), 200) LIKE $2,
		       left(lower(name), 200) LIKE $2 OR left(lower(first_name), 200) LIKE $2 OR left(lower(last_name), 200) LIKE $2
		FROM users
		WHERE clerk_id LIKE $1 OR left(lower(email), 200) LIKE $2 OR left(lower(name), 200) LIKE $2
		   OR left(lower(first_name), 200) LIKE $2 OR left(lower(last_name), 200) LIKE $2
		ORDER BY clerk_id LIMIT $3`, idPrefix, prefix, searchLimit)
	if err != nil {
		return nil, unavailable(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SearchResult, error) {
		var s SearchResult
		var id, email, name *bool
		if err := r.Scan(&s.ClerkID, &s.Role, &s.PracticeID, &s.DeletedAt, &id, &email, &name); err != nil {
			return s, err
		}
		for _, m := range []struct {
			hit   *bool
			field string
		}{{id, "clerk_id"}, {email, "email"}, {name, "name"}} {
			if m.hit != nil && *m.hit {
				s.Matched = append(s.Matched, m.field)
			}
		}
		return s, nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

var errNoUser = domain.Errorf(domain.ENOTFOUND, "no_such_user", "no user with that Clerk id in the users read model")

// validClerkID checks a Clerk user id from a path.
func validClerkID(id string) error {
	if !strings.HasPrefix(id, "user_") || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) {
		return domain.Errorf(domain.EINVALID, "invalid_clerk_id", "a Clerk user id is user_ followed by letters and digits")
	}
	return nil
}

// Get returns a user's row, practice and memberships; personal fields are
// Redacted unless reveal.
func (u *Users) Get(ctx context.Context, id string, reveal bool) (User, error) {
	if err := validClerkID(id); err != nil {
		return User{}, err
	}
	var usr User
	err := u.Pool.QueryRow(ctx, `SELECT clerk_id, email, first_name, last_name, name, image_url, role, practice_id, created_at, updated_at, deleted_at
		FROM users WHERE clerk_id = $1`, id).Scan(&usr.ClerkID, &usr.Email, &usr.FirstName, &usr.LastName, &usr.Name, &usr.ImageURL,
		&usr.Role, &usr.PracticeID, &usr.CreatedAt, &usr.UpdatedAt, &usr.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, errNoUser
	}
	if err != nil {
		return User{}, unavailable(err)
	}
	if usr.PracticeID != nil && *usr.PracticeID != "" {
		var p Practice
		err := u.Pool.QueryRow(ctx, `SELECT clerk_org_id, name, slug, deleted_at FROM practices WHERE clerk_org_id = $1`, *usr.PracticeID).
			Scan(&p.ID, &p.Name, &p.Slug, &p.DeletedAt)
		switch {
		case err == nil:
			usr.Practice = &p
		case !errors.Is(err, pgx.ErrNoRows):
			return User{}, unavailable(err)
		}
	}
	rows, err := u.Pool.Query(ctx, `SELECT clerk_membership_id, clerk_org_id, role, created_at, deleted_at FROM memberships WHERE clerk_user_id = $1 ORDER BY created_at NULLS LAST, clerk_membership_id`, id)
	if err != nil {
		return User{}, unavailable(err)
	}
	usr.Memberships, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Membership, error) {
		var m Membership
		err := r.Scan(&m.ID, &m.PracticeID, &m.Role, &m.CreatedAt, &m.DeletedAt)
		return m, err
	})
	if err != nil {
		return User{}, unavailable(err)
	}
	if usr.Memberships == nil {
		usr.Memberships = []Membership{}
	}
	usr.Revealed = reveal
	if !reveal {
		for _, f := range []**string{&usr.Email, &usr.FirstName, &usr.LastName, &usr.Name, &usr.ImageURL} {
			if *f != nil {
				r := Redacted
				*f = &r
			}
		}
	}
	return usr, nil
}

// TimelineEntry is one ledger entry about a user.
type TimelineEntry struct {
	Offset     int64     `json:"offset"`
	SvixID     string    `json:"svix_id"`
	EventType  string    `json:"event_type"`
	Source     string    `json:"source"`
	SourceName string    `json:"source_name"`
	SubjectID  string    `json:"subject_id"`
	EventTime  time.Time `json:"event_time"`
	ReceivedAt time.Time `json:"received_at"`
	// Actor and Reason are those of an access change, or of a read
	// (personal data accessed).
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason,omitempty"`
	// LedgerIndex is the entry's position in the Merkle tree (null before
	// the sealer reaches it); InCheckpoint tells whether the latest signed
	// checkpoint covers it (its inclusion proof: GET
	// /ledger/proof/inclusion?index=…&tree_size=… on the webhook listener).
	LedgerIndex  *int64 `json:"ledger_index"`
	InCheckpoint bool   `json:"in_checkpoint"`
	// Payload is the body, personal values redacted unless revealed.
	Payload json.RawMessage `json:"payload"`
}

// Timeline is one page of a user's timeline.
type Timeline struct {
	ClerkID string          `json:"clerk_id"`
	Entries []TimelineEntry `json:"entries"`
	// CheckpointSize is the tree size of the latest signed checkpoint (0:
	// none yet).
	CheckpointSize int64 `json:"checkpoint_size"`
	// Next is the after value of the next page (0: this is the last).
	Next     int64 `json:"next,omitempty"`
	Revealed bool  `json:"revealed"`
}

// Timeline page sizes.
const (
	DefaultTimelineLimit = 100
	MaxTimelineLimit     = 1000
)

// ReconcileActor is the actor a timeline shows for a soft delete that
// reconciliation with Clerk's Backend API recorded.
const ReconcileActor = "webhookd reconcile"

// SourceName names a ledger source for people.
func SourceName(source string) string {
	switch source {
	case domain.SourceClerk:
		return "Clerk webhook"
	case domain.SourceClerkAPI:
		return "Clerk API snapshot"
	case domain.SourceWebhookd:
		return "operator (webhookd)"
	}
	return source
}

// Timeline returns up to limit entries about user id, oldest first, with
// offsets after after: the entries whose subject is the user (Clerk's
// user events, access changes, reads of the user's data) or one of the
// user's memberships, deleted ones included.
func (u *Users) Timeline(ctx context.Context, id string, after int64, limit int, reveal bool) (Timeline, error) {
	if err := validClerkID(id); err != nil {
		return Timeline{}, err
	}
	if limit <= 0 {
		limit = DefaultTimelineLimit
	}
	limit = min(limit, MaxTimelineLimit)
	// One ordered index scan per subject (ledger_events_subject_offset_idx),
	// each stopping after limit+1 rows, merged: a user with many entries
	// costs a page, not the whole history.
	rows, err := u.Pool.Query(ctx, `
		WITH subjects AS (
			SELECT $1::text AS s
			UNION SELECT clerk_membership_id FROM memberships WHERE clerk_user_id = $1
		), page AS (
			SELECT p.off FROM subjects, LATERAL (
				SELECT "offset" AS off FROM ledger_events WHERE subject_id = subjects.s AND "offset" > $2 ORDER BY "offset" LIMIT $3
			) p ORDER BY p.off LIMIT $3
		), cp AS (
			SELECT coalesce(max(tree_size), 0) AS size FROM ledger_checkpoints
		)
		SELECT e."offset", e.svix_id, e.event_type, e.source, e.subject_id, e.event_time, e.received_at, e.payload, i.ledger_index, cp.size
		FROM page JOIN ledger_events e ON e."offset" = page.off
		LEFT JOIN ledger_index i ON i.ledger_offset = e."offset"
		CROSS JOIN cp
		ORDER BY e."offset"`, id, after, limit+1)
	if err != nil {
		return Timeline{}, unavailable(err)
	}
	defer rows.Close()
	tl := Timeline{ClerkID: id, Entries: []TimelineEntry{}, Revealed: reveal}
	for rows.Next() {
		var e TimelineEntry
		var payload []byte
		if err := rows.Scan(&e.Offset, &e.SvixID, &e.EventType, &e.Source, &e.SubjectID, &e.EventTime, &e.ReceivedAt, &payload, &e.LedgerIndex, &tl.CheckpointSize); err != nil {
			return Timeline{}, unavailable(err)
		}
		if len(tl.Entries) == limit {
			tl.Next = tl.Entries[limit-1].Offset
			break
		}
		e.SourceName = SourceName(e.Source)
		e.InCheckpoint = e.LedgerIndex != nil && *e.LedgerIndex < tl.CheckpointSize
		e.Actor, e.Reason = actorAndReason(e.Source, e.EventType, payload)
		e.Payload = renderPayload(payload, reveal)
		tl.Entries = append(tl.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return Timeline{}, unavailable(err)
	}
	return tl, nil
}

// actorAndReason reads who and why from webhookd's own entries.
func actorAndReason(source, eventType string, payload []byte) (string, string) {
	if source != domain.SourceWebhookd && source != domain.SourceClerkAPI {
		return "", ""
	}
	env, err := domain.ParseEnvelope(payload)
	if err != nil {
		return "", ""
	}
	switch eventType {
	case domain.EventUserNotFound:
		var n domain.UserNotFound
		if json.Unmarshal(env.Data, &n) != nil {
			return "", ""
		}
		return ReconcileActor, n.Reason
	case domain.EventUserAccessChanged:
		c, err := domain.ParseAccessChange(env.Data)
		if err != nil {
			return "", ""
		}
		return c.Actor, c.Reason
	case domain.EventPersonalDataAccessed:
		var a domain.PersonalDataAccess
		if json.Unmarshal(env.Data, &a) != nil {
			return "", ""
		}
		return a.Actor, a.Reason
	}
	return "", ""
}

// renderPayload returns the body as JSON, personal values redacted (the
// log redaction's rules) unless reveal.
func renderPayload(payload []byte, reveal bool) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		out, _ := json.Marshal(Redacted)
		return out
	}
	if !reveal {
		v = redact.Value(v)
	}
	out, err := json.Marshal(v)
	if err != nil {
		out, _ = json.Marshal(Redacted)
	}
	return out
}
