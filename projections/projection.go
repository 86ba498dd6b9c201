package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
)

// Projection applies ledger entries to a read model. It is what the live
// Runner needs; a ReadModel is a Projection that can also be rebuilt,
// checked and re-driven by name.
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
// few statements. The runner prepares (decodes) each entry of a batch it
// read and applies them all with one ApplyBatch call in the batch
// transaction, just before the position is stored with it. A Prepare error
// is the entry's own: retried and at last recorded as poison, like an Apply
// error. When ApplyBatch fails, the runner rolls the batch back and applies
// those entries one by one with Apply, so that one bad entry cannot hold
// up the others.
type Batched interface {
	Projection
	// Prepare decodes e for ApplyBatch; ok is false when the projection
	// has nothing to do with e.
	Prepare(e domain.LedgerEntry) (prepared any, ok bool, err error)
	// ApplyBatch applies prepared entries, given in ledger order, inside
	// tx. An error may leave partial writes and tx unusable.
	ApplyBatch(ctx context.Context, tx pgx.Tx, prepared []any) error
}

// ReadModel is a projection described once, from which every part of
// webhookd works by name: the live Runner, rebuilds and checks (`webhookd
// replay`), lag in /readyz and metrics, and the re-driving of
// projection_failures (`webhookd projections retry`). Model implements it.
type ReadModel interface {
	Batched
	// Table is the table the model writes.
	Table() string
	// Key is the table's primary key column (one text column): rows are
	// compared and reported by it.
	Key() string
	// EventTypes lists the ledger event types the model applies.
	EventTypes() []string
	// WithTable is the same model writing to table (a rebuild's shadow).
	WithTable(table string) ReadModel
	// NewFold starts an in-memory fold of prepared entries, for a rebuild.
	NewFold() Fold
}

// Fold accumulates a read model's rows in memory from prepared entries
// given in ledger order, with the same rules the live projection applies.
type Fold interface {
	// Add applies one prepared entry.
	Add(prepared any)
	// Len is the number of rows.
	Len() int
	// Rows returns the rows, one value per column of Columns.
	Rows() [][]any
	// Columns names the table's columns in the order of Rows.
	Columns() []string
}

// All returns the read models webhookd serve runs, in the order `replay
// all` and the commands list them.
func All() []ReadModel {
	return []ReadModel{Users, Practices, Memberships}
}

// Projections returns All as Projections, for a RunnerConfig.
func Projections() []Projection { return Checked(nil) }

// Checked returns All as Projections, each behind origin (WithOrigin): what
// webhookd serve runs.
func Checked(origin func(domain.LedgerEntry) error) []Projection {
	var out []Projection
	for _, m := range All() {
		out = append(out, WithOrigin(m, origin))
	}
	return out
}

// Names lists the names of All.
func Names() []string {
	var out []string
	for _, m := range All() {
		out = append(out, m.Name())
	}
	return out
}

// ByName returns the read model called name, or an error listing the
// names there are.
func ByName(name string) (ReadModel, error) {
	for _, m := range All() {
		if m.Name() == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no projection %q (there are %v)", name, Names())
}
