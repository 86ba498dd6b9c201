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
// applies the entry with UserState.Apply and writes the row back. It
// manages its own savepoint, pipelined with its statements, so an entry
// costs two round trips: [SAVEPOINT, SELECT … FOR UPDATE] and [upsert,
// RELEASE]. A failure rolls back to the savepoint: no partial write, and
// the transaction stays usable.
func (u Users) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	ev, err := DecodeUserEvent(e)
	if err != nil || ev.Kind == UserIgnored {
		return err
	}
	if err := u.apply(ctx, tx, ev); err != nil {
		rb := &pgx.Batch{}
		rb.Queue(`ROLLBACK TO SAVEPOINT users_entry`)
		rb.Queue(`RELEASE SAVEPOINT users_entry`)
		if rbErr := tx.SendBatch(ctx, rb).Close(); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	return nil
}

// AppliesAtomically tells the runner that Apply handles its own savepoint.
func (Users) AppliesAtomically() {}

func (u Users) apply(ctx context.Context, tx pgx.Tx, ev UserEvent) error {
	load := &pgx.Batch{}
	load.Queue(`SAVEPOINT users_entry`)
	var (
		s     UserState
		found bool
	)
	load.Queue(`SELECT `+userColumns+` FROM `+u.table()+` WHERE clerk_id = $1 FOR UPDATE`, ev.ClerkID).
		Query(func(rows pgx.Rows) error {
			var err error
			s, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[UserState])
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
	if err := tx.SendBatch(ctx, load).Close(); err != nil {
		return fmt.Errorf("load user: %w", err)
	}
	if !found {
		s = NewUserState(ev.ClerkID)
	}
	store := &pgx.Batch{}
	if s.Apply(ev) {
		store.Queue(`
			INSERT INTO `+u.table()+` (`+userColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (clerk_id) DO UPDATE SET
				email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
				name = EXCLUDED.name, image_url = EXCLUDED.image_url, role = EXCLUDED.role,
				practice_id = EXCLUDED.practice_id, created_at = EXCLUDED.created_at,
				updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at,
				clerk_updated_at = EXCLUDED.clerk_updated_at, last_offset = EXCLUDED.last_offset`,
			s.ClerkID, s.Email, s.FirstName, s.LastName, s.Name, s.ImageURL, s.Role, s.PracticeID,
			s.CreatedAt, s.UpdatedAt, s.DeletedAt, s.ClerkUpdatedAt, s.LastOffset)
	}
	store.Queue(`RELEASE SAVEPOINT users_entry`)
	if err := tx.SendBatch(ctx, store).Close(); err != nil {
		return fmt.Errorf("store user: %w", err)
	}
	return nil
}
