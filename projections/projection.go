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

// Batched is implemented by a projection that applies many entries with a
// few statements. The runner then prepares (decodes) each entry as the
// subscriber hands it over, and applies all the entries of the
// subscriber's batch with one ApplyBatch call in the batch transaction,
// just before the consumer position is stored with it. A Prepare error is
// the entry's own: retried and at last recorded as poison, like an Apply
// error. When ApplyBatch fails, the runner rolls the batch transaction
// back and applies those entries one by one with Apply, so that one bad
// entry cannot hold up the others.
type Batched interface {
	Projection
	// Prepare decodes e for ApplyBatch; ok is false when the projection
	// has nothing to do with e.
	Prepare(e domain.LedgerEntry) (prepared any, ok bool, err error)
	// ApplyBatch applies prepared entries, given in ledger order, inside
	// tx. An error may leave partial writes and tx unusable.
	ApplyBatch(ctx context.Context, tx pgx.Tx, prepared []any) error
}

// All returns the projections webhookd serve runs.
func All() []Projection {
	return []Projection{Users{}}
}
