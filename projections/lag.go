package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	err := pool.QueryRow(ctx, `
		WITH pos AS (
			SELECT coalesce((SELECT last_processed_transaction_id FROM ledger_offsets WHERE consumer_group = $1), '0'::xid8) AS tx,
			       coalesce((SELECT offset_acked FROM ledger_offsets WHERE consumer_group = $1), 0) AS off
		)
		SELECT count(*), min(e.received_at)
		FROM ledger_events e, pos
		WHERE (e.transaction_id = pos.tx AND e."offset" > pos.off) OR e.transaction_id > pos.tx`,
		ConsumerGroup(projection)).Scan(&n, &oldest)
	if err != nil {
		return Lag{}, fmt.Errorf("measure %s projection lag: %w", projection, err)
	}
	lag := Lag{Projection: projection, Events: n}
	if oldest != nil {
		lag.Seconds = max(0, now.Sub(*oldest).Seconds())
	}
	return lag, nil
}
