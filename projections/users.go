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

// apply sends the entry's one statement between SAVEPOINT and RELEASE in
// a single round trip. The statements are the SQL form of
// UserState.Apply (which a rebuild folds with); the permutation,
// randomized and rebuild-equals-live tests hold the two to the same
// result.
func (u Users) apply(ctx context.Context, tx pgx.Tx, ev UserEvent) error {
	b := &pgx.Batch{}
	b.Queue(`SAVEPOINT users_entry`)
	switch ev.Kind {
	case UserProfile:
		p := ev.User
		b.Queue(`
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
			p.ClerkID, p.Email, p.FirstName, p.LastName, p.Name, p.ImageURL, p.CreatedAt, p.UpdatedAt, ev.Offset)
	case UserDeleted:
		b.Queue(`
			INSERT INTO `+u.table()+` AS u (clerk_id, deleted_at, last_offset) VALUES ($1, $2, $3)
			ON CONFLICT (clerk_id) DO UPDATE SET
				deleted_at = LEAST(u.deleted_at, EXCLUDED.deleted_at), last_offset = EXCLUDED.last_offset`,
			ev.ClerkID, ev.Time, ev.Offset)
	case UserAccess:
		a := ev.Access
		role := domain.DefaultRole
		if a.Role != nil {
			role = *a.Role
		}
		var practice *string
		if a.PracticeID != nil {
			practice = nonEmpty(*a.PracticeID)
		}
		b.Queue(`
			INSERT INTO `+u.table()+` AS u (clerk_id, role, practice_id, last_offset) VALUES ($1, $2, $3, $6)
			ON CONFLICT (clerk_id) DO UPDATE SET
				role = CASE WHEN $4 THEN EXCLUDED.role ELSE u.role END,
				practice_id = CASE WHEN $5 THEN EXCLUDED.practice_id ELSE u.practice_id END,
				last_offset = EXCLUDED.last_offset`,
			a.ClerkID, role, practice, a.Role != nil, a.PracticeID != nil, ev.Offset)
	}
	b.Queue(`RELEASE SAVEPOINT users_entry`)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("apply user entry: %w", err)
	}
	return nil
}
