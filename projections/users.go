package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
)

// Users projects Clerk user events and webhookd's access changes into the
// users table.
//
// Rules (see docs/ARCHITECTURE.md): profile data is last-writer-wins on
// Clerk's updated_at (ties go to the later ledger entry); user.deleted sets
// deleted_at and keeps the row, writing a tombstone for a user not seen
// yet; nothing clears deleted_at, so a late create or update cannot revive
// a deleted user (it may still fill in the profile the deleted row keeps,
// which is what makes every delivery order converge); role and
// practice_id change only through webhookd.user.access_changed events, in
// ledger order.
type Users struct {
	// Table is the table written. Defaults to "users"; a rebuild writes a
	// shadow table.
	Table string
}

// Name implements Projection.
func (u Users) Name() string { return "users" }

func (u Users) table() string {
	if u.Table == "" {
		return "users"
	}
	return u.Table
}

// Apply implements Projection.
func (u Users) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	switch {
	case e.Source == domain.SourceClerk && (e.EventType == domain.EventUserCreated || e.EventType == domain.EventUserUpdated):
		return u.upsert(ctx, tx, e)
	case e.Source == domain.SourceClerk && e.EventType == domain.EventUserDeleted:
		return u.delete(ctx, tx, e)
	case e.Source == domain.SourceWebhookd && e.EventType == domain.EventUserAccessChanged:
		return u.changeAccess(ctx, tx, e)
	}
	return nil
}

func (u Users) upsert(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	env, err := domain.ParseEnvelope(e.Payload)
	if err != nil {
		return err
	}
	user, err := domain.ParseUser(env.Data, env.Time)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO `+u.table()+` AS u (clerk_id, email, first_name, last_name, name, image_url,
			created_at, updated_at, clerk_updated_at, last_offset)
		VALUES ($1, NULLIF($2, ''), NULLIF($3, ''), NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, ''), $7, $8, $8, $9)
		ON CONFLICT (clerk_id) DO UPDATE SET
			email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
			name = EXCLUDED.name, image_url = EXCLUDED.image_url,
			created_at = LEAST(u.created_at, EXCLUDED.created_at),
			updated_at = EXCLUDED.updated_at, clerk_updated_at = EXCLUDED.clerk_updated_at,
			last_offset = EXCLUDED.last_offset
		WHERE u.clerk_updated_at IS NULL OR u.clerk_updated_at <= EXCLUDED.clerk_updated_at`,
		user.ClerkID, user.Email, user.FirstName, user.LastName, user.Name, user.ImageURL,
		user.CreatedAt, user.UpdatedAt, e.Offset)
	if err != nil {
		return fmt.Errorf("upsert user: %w", err)
	}
	return nil
}

func (u Users) delete(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	// The deletion time is Clerk's event time: the same whichever copy or
	// order it arrives in. The earliest one stands.
	_, err := tx.Exec(ctx, `
		INSERT INTO `+u.table()+` AS u (clerk_id, deleted_at, last_offset)
		VALUES ($1, $2, $3)
		ON CONFLICT (clerk_id) DO UPDATE SET
			deleted_at = LEAST(u.deleted_at, EXCLUDED.deleted_at),
			last_offset = EXCLUDED.last_offset`,
		e.SubjectID, e.EventTime, e.Offset)
	if err != nil {
		return fmt.Errorf("soft-delete user: %w", err)
	}
	return nil
}

func (u Users) changeAccess(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	env, err := domain.ParseEnvelope(e.Payload)
	if err != nil {
		return err
	}
	c, err := domain.ParseAccessChange(env.Data)
	if err != nil {
		return err
	}
	role := domain.DefaultRole
	if c.Role != nil {
		role = *c.Role
	}
	var practice *string
	if c.PracticeID != nil && *c.PracticeID != "" {
		practice = c.PracticeID
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO `+u.table()+` AS u (clerk_id, role, practice_id, last_offset)
		VALUES ($1, $2, $3, $6)
		ON CONFLICT (clerk_id) DO UPDATE SET
			role = CASE WHEN $4 THEN EXCLUDED.role ELSE u.role END,
			practice_id = CASE WHEN $5 THEN EXCLUDED.practice_id ELSE u.practice_id END,
			last_offset = EXCLUDED.last_offset`,
		c.ClerkID, role, practice, c.Role != nil, c.PracticeID != nil, e.Offset)
	if err != nil {
		return fmt.Errorf("change user access: %w", err)
	}
	return nil
}
