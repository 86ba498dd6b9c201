package loadgen

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// usersCheck is how the users table compares with in-order delivery.
type usersCheck struct {
	// Checked is how many users the model and the table hold together.
	Checked int
	// Mismatched counts users whose row differs from the model, is
	// missing, or should not exist.
	Mismatched int
	// Examples describes the first few mismatches, sorted by user id.
	Examples []string
}

// checkUsers reads the users table once and compares it with what
// delivering, in order, the events in the ledger gives (Expect). The
// projection's rules make the result independent of arrival order (a
// user's events have strictly increasing times, so no ties), which the
// concurrent load scrambles. ledger is event index → position, as
// ledgerPositions returns; accepted events missing from it are counted as
// not visible, not here.
func checkUsers(ctx context.Context, conn *pgx.Conn, events []Event, ledger map[int]position) (usersCheck, error) {
	inLedger := make([]Event, 0, len(ledger))
	for i, e := range events {
		if _, ok := ledger[i]; ok {
			inLedger = append(inLedger, e)
		}
	}
	rows, err := conn.Query(ctx, `SELECT clerk_id, coalesce(email, ''), clerk_updated_at, deleted_at FROM users`)
	if err != nil {
		return usersCheck{}, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	got := map[string]UserModel{}
	for rows.Next() {
		var (
			m                  UserModel
			updated, deletedAt *time.Time
		)
		if err := rows.Scan(&m.ClerkID, &m.Email, &updated, &deletedAt); err != nil {
			return usersCheck{}, fmt.Errorf("read users: %w", err)
		}
		if updated != nil {
			m.UpdatedAt = *updated
		}
		if deletedAt != nil {
			m.Deleted, m.DeletedAt = true, *deletedAt
		}
		got[m.ClerkID] = m
	}
	if err := rows.Err(); err != nil {
		return usersCheck{}, fmt.Errorf("read users: %w", err)
	}
	return compareUsers(Expect(inLedger), got), nil
}

// examplesShown bounds usersCheck.Examples.
const examplesShown = 5

// compareUsers compares the users table (got) with the model (want): a
// user matches when both hold it with the same email and clerk_updated_at
// (the latest profile by updated_at; a deleted user keeps its profile) and
// the same deleted_at (set iff the user was deleted, to the deletion
// time).
func compareUsers(want, got map[string]UserModel) usersCheck {
	var c usersCheck
	var wrong []string
	for id, w := range want {
		c.Checked++
		g, ok := got[id]
		switch {
		case !ok:
			wrong = append(wrong, fmt.Sprintf("%s: no row, want %s", id, describeUser(w)))
		case g.Email != w.Email || !g.UpdatedAt.Equal(w.UpdatedAt) || g.Deleted != w.Deleted || !g.DeletedAt.Equal(w.DeletedAt):
			wrong = append(wrong, fmt.Sprintf("%s: got %s, want %s", id, describeUser(g), describeUser(w)))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			c.Checked++
			wrong = append(wrong, fmt.Sprintf("%s: got %s, want no row", id, describeUser(g)))
		}
	}
	slices.Sort(wrong)
	c.Mismatched = len(wrong)
	c.Examples = wrong[:min(len(wrong), examplesShown)]
	return c
}

func describeUser(m UserModel) string {
	s := fmt.Sprintf("email %q, clerk_updated_at %s", m.Email, formatTime(m.UpdatedAt))
	if m.Deleted {
		s += ", deleted_at " + formatTime(m.DeletedAt)
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "NULL"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
