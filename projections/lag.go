package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/eventstore"
)

// Lag is how far a projection is behind the ledger.
type Lag struct {
	Projection string `json:"projection"`
	// Events is the number of committed ledger entries not yet applied.
	Events int64 `json:"events"`
	// Seconds is the age of the oldest entry not yet applied (0 when caught
	// up).
	Seconds float64 `json:"seconds"`
}

// MeasureLag reads a projection's lag. A projection that never ran counts
// the whole ledger.
func MeasureLag(ctx context.Context, pool *pgxpool.Pool, projection string, now time.Time) (Lag, error) {
	var (
		n      int64
		oldest *time.Time
	)
	// The rows after the position, found by a range scan of the primary
	// key. The position is only known at run time, so the planner guesses
	// a third of the ledger and picks a full scan, which on a large ledger
	// costs a second per scrape of /metrics or /readyz even when the
	// projection is caught up; the range scan costs what the lag is.
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
		SELECT count(*), min(received_at) FROM `+eventstore.EventsTable+`
		WHERE `+eventstore.AfterPosition(
			`coalesce((SELECT last_processed_transaction_id FROM `+eventstore.OffsetsTable+` WHERE consumer_group = $1), '0'::xid8)`,
			`coalesce((SELECT offset_acked FROM `+eventstore.OffsetsTable+` WHERE consumer_group = $1), 0)`),
			ConsumerGroup(projection)).Scan(&n, &oldest)
	})
	if err != nil {
		return Lag{}, fmt.Errorf("measure %s projection lag: %w", projection, err)
	}
	lag := Lag{Projection: projection, Events: n}
	if oldest != nil {
		lag.Seconds = max(0, now.Sub(*oldest).Seconds())
	}
	return lag, nil
}
