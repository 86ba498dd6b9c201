package projections

import (
	"context"
	"fmt"
	"time"

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
	n, oldest, err := eventstore.GroupLag(ctx, pool, ConsumerGroup(projection))
	if err != nil {
		return Lag{}, fmt.Errorf("measure %s projection lag: %w", projection, err)
	}
	lag := Lag{Projection: projection, Events: n}
	if oldest != nil {
		lag.Seconds = max(0, now.Sub(*oldest).Seconds())
	}
	return lag, nil
}
