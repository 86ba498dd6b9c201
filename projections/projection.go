package projections

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
)

// Projection applies ledger entries to a read model.
type Projection interface {
	// Name is the projection's consumer group and the name in logs,
	// metrics and projection_failures.
	Name() string
	// Apply applies one entry inside tx. It must skip entries of types it
	// does not handle, and must be idempotent and order-independent in its
	// effect. An error rolls back only this entry's writes.
	Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error
}

// Atomic is implemented by a projection whose Apply already leaves no
// partial write, and the transaction usable, when it fails (it pipelines
// its own savepoint with its statements). The runner then adds no
// savepoint of its own, saving two round trips per entry.
type Atomic interface {
	Projection
	AppliesAtomically()
}

// All returns the projections webhookd serve runs.
func All() []Projection {
	return []Projection{Users{}}
}
