package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// Users projects Clerk user events and webhookd's access changes into the
// users table, with the rules of UserState.Apply: the live projection
// loads the rows an entry or batch touches, folds the entries into them in
// memory with the same method a rebuild folds the whole ledger with, and
// writes back the rows that changed.
type Users struct {
	// Table is the table written. Defaults to "users"; a rebuild writes a
	// shadow table.
	Table string
	// Origin, when set, checks that each entry the projection would apply
	// proves where it came from (audit.OriginVerifier.Verify: the Clerk
	// row's Svix signature, webhookd's own signature). An entry that fails
	// is still applied if a signed checkpoint covers it (the sealer checked
	// its origin before sealing it: that is how entries signed with a
	// retired secret, or appended before origins were checked, stay in the
	// read model); otherwise applying it fails with an error starting
	// "origin_unverified", so that the runner skips it and records it in
	// projection_failures. Unset, nothing is checked.
	Origin func(domain.LedgerEntry) error
}

var _ Batched = Users{}

// Name implements Projection.
func (u Users) Name() string { return "users" }

func (u Users) table() string {
	if u.Table == "" {
		return "users"
	}
	return u.Table
}

// userColumnNames are the columns of UserState, in field order.
var userColumnNames = []string{"clerk_id", "email", "first_name", "last_name", "name", "image_url",
	"role", "practice_id", "created_at", "updated_at", "deleted_at", "clerk_updated_at", "last_offset"}

// userColumns is userColumnNames as an SQL list.
var userColumns = strings.Join(userColumnNames, ", ")

// values is s as a row of userColumns.
func (s *UserState) values() []any {
	return []any{s.ClerkID, s.Email, s.FirstName, s.LastName, s.Name, s.ImageURL, s.Role, s.PracticeID,
		s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset}
}

// Prepare implements Batched: it decodes e as a UserEvent.
func (u Users) Prepare(e domain.LedgerEntry) (any, bool, error) {
	ev, err := DecodeUserEvent(e)
	if err != nil || ev.Kind == UserIgnored {
		return nil, false, err
	}
	if u.Origin != nil {
		ev.origin = u.Origin(e)
	}
	return ev, true, nil
}

// Apply implements Projection: ApplyBatch for one entry.
func (u Users) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	ev, ok, err := u.Prepare(e)
	if err != nil || !ok {
		return err
	}
	return u.ApplyBatch(ctx, tx, []any{ev})
}

// ApplyBatch implements Batched with two statements whatever the number
// of entries: it locks and reads the rows of the users the entries touch,
// applies the entries in order with UserState.Apply, and upserts the rows
// that changed.
func (u Users) ApplyBatch(ctx context.Context, tx pgx.Tx, prepared []any) error {
	if len(prepared) == 0 {
		return nil
	}
	events := make([]UserEvent, len(prepared))
	var ids []string
	seen := map[string]bool{}
	for i, p := range prepared {
		ev, ok := p.(UserEvent)
		if !ok {
			return fmt.Errorf("users projection: prepared entry is %T, want UserEvent", p)
		}
		events[i] = ev
		if !seen[ev.ClerkID] {
			seen[ev.ClerkID] = true
			ids = append(ids, ev.ClerkID)
		}
	}
	if err := refuseUnproven(ctx, tx, events); err != nil {
		return err
	}
	states, err := u.load(ctx, tx, ids)
	if err != nil {
		return err
	}
	var changed []*UserState
	dirty := map[string]bool{}
	for _, ev := range events {
		s, ok := states[ev.ClerkID]
		if !ok {
			fresh := NewUserState(ev.ClerkID)
			s = &fresh
			states[ev.ClerkID] = s
		}
		if s.Apply(ev) && !dirty[ev.ClerkID] {
			dirty[ev.ClerkID] = true
			changed = append(changed, s)
		}
	}
	return u.store(ctx, tx, changed)
}

// ErrOriginUnverified is matched by the error of applying an entry whose
// origin does not verify and that no signed checkpoint covers (see
// Users.Origin).
var ErrOriginUnverified = errors.New("origin_unverified")

// refuseUnproven fails for the first of events whose origin did not verify
// unless a signed checkpoint covers it: one lookup of the failing entries,
// none when all verify.
func refuseUnproven(ctx context.Context, q eventstore.Querier, events []UserEvent) error {
	var offsets []int64
	for _, ev := range events {
		if ev.origin != nil {
			offsets = append(offsets, ev.Offset)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	sealed, err := eventstore.CheckpointedOffsets(ctx, q, offsets)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if ev.origin != nil && !sealed[ev.Offset] {
			return fmt.Errorf("%w: %w", ErrOriginUnverified, ev.origin)
		}
	}
	return nil
}

// load reads and locks the rows of ids that exist, in id order (so that
// two writers lock rows in the same order).
//
// Each id is looked up by itself (LATERAL, one primary-key probe per id):
// with clerk_id = ANY($1) the planner reads a small users table (a few
// thousand rows, or a fresh install, or a rebuild's new table) with a
// sequential scan for every batch, and the scan gets slower with every
// dead row version the projection's own updates leave until vacuum runs:
// 0.78 ms instead of 0.14 ms for 40 ids in a 2,000-user table under make
// bench, where such scans were most of the projection's database time.
func (u Users) load(ctx context.Context, tx pgx.Tx, ids []string) (map[string]*UserState, error) {
	slices.Sort(ids)
	rows, err := tx.Query(ctx, `
		SELECT u.* FROM unnest($1::text[]) AS k(clerk_id)
		CROSS JOIN LATERAL (SELECT `+userColumns+` FROM `+u.table()+` WHERE clerk_id = k.clerk_id FOR UPDATE) AS u`, ids)
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	defer rows.Close()
	states := make(map[string]*UserState, len(ids))
	for rows.Next() {
		s := &UserState{}
		if err := rows.Scan(&s.ClerkID, &s.Email, &s.FirstName, &s.LastName, &s.Name, &s.ImageURL, &s.Role, &s.PracticeID,
			&s.CreatedAt, &s.UpdatedAt, &s.DeletedAt, &s.ClerkUpdatedAt, &s.LastOffset); err != nil {
			return nil, fmt.Errorf("load users: %w", err)
		}
		states[s.ClerkID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return states, nil
}

// store upserts states in one statement, one array parameter per column.
func (u Users) store(ctx context.Context, tx pgx.Tx, states []*UserState) error {
	if len(states) == 0 {
		return nil
	}
	cols := make([][]any, len(userColumnNames))
	for i := range cols {
		cols[i] = make([]any, len(states))
	}
	for j, s := range states {
		for i, v := range s.values() {
			cols[i][j] = v
		}
	}
	args := make([]any, len(cols))
	for i := range cols {
		args[i] = cols[i]
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO `+u.table()+` (`+userColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::bigint[])
		ON CONFLICT (clerk_id) DO UPDATE SET
			email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
			name = EXCLUDED.name, image_url = EXCLUDED.image_url, role = EXCLUDED.role,
			practice_id = EXCLUDED.practice_id, created_at = EXCLUDED.created_at,
			updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at,
			clerk_updated_at = EXCLUDED.clerk_updated_at, last_offset = EXCLUDED.last_offset`, args...)
	if err != nil {
		return fmt.Errorf("store users: %w", err)
	}
	return nil
}
