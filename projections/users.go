package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
)

// Users projects Clerk user events and webhookd's access changes into the
// users table, with the rules of UserState.Apply.
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

// userColumns is the column list of UserState, in field order.
const userColumns = `clerk_id, email, first_name, last_name, name, image_url, role, practice_id,
	created_at, updated_at, deleted_at, clerk_updated_at, last_offset`

// Apply implements Projection: it loads the user's row (locking it),
// applies the entry and writes the row back.
func (u Users) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	ev, err := DecodeUserEvent(e)
	if err != nil || ev.Kind == UserIgnored {
		return err
	}
	s, err := loadUser(ctx, tx, u.table(), ev.ClerkID)
	if err != nil {
		return err
	}
	if !s.Apply(ev) {
		return nil
	}
	return storeUser(ctx, tx, u.table(), s)
}

func loadUser(ctx context.Context, tx pgx.Tx, table, clerkID string) (UserState, error) {
	rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM `+table+` WHERE clerk_id = $1 FOR UPDATE`, clerkID)
	if err != nil {
		return UserState{}, fmt.Errorf("load user: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[UserState])
	if errors.Is(err, pgx.ErrNoRows) {
		return NewUserState(clerkID), nil
	}
	if err != nil {
		return UserState{}, fmt.Errorf("load user: %w", err)
	}
	return s, nil
}

func storeUser(ctx context.Context, tx pgx.Tx, table string, s UserState) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO `+table+` (`+userColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (clerk_id) DO UPDATE SET
			email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
			name = EXCLUDED.name, image_url = EXCLUDED.image_url, role = EXCLUDED.role,
			practice_id = EXCLUDED.practice_id, created_at = EXCLUDED.created_at,
			updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at,
			clerk_updated_at = EXCLUDED.clerk_updated_at, last_offset = EXCLUDED.last_offset`,
		s.ClerkID, s.Email, s.FirstName, s.LastName, s.Name, s.ImageURL, s.Role, s.PracticeID,
		s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset)
	if err != nil {
		return fmt.Errorf("store user: %w", err)
	}
	return nil
}
