package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// ErrOriginUnverified is matched by the error of applying an entry whose
// origin does not verify and that no signed checkpoint covers (see
// WithOrigin).
var ErrOriginUnverified = errors.New("origin_unverified")

// WithOrigin returns m, checking that each entry it would apply proves
// where it came from: origin (seal.OriginVerifier.Verify: the Clerk row's
// Svix signature, webhookd's own signature) returns nil for it. An entry
// that fails is still applied if a signed checkpoint covers it (the sealer
// checked its origin before sealing it: that is how entries signed with a
// retired secret, or appended before origins were checked, stay in the
// read models). Otherwise applying it fails with ErrOriginUnverified, so
// that the live runner retries it and records it in projection_failures,
// and a rebuild skips it the same way. A nil origin returns m unchanged.
//
// The check is the same for every read model, so it wraps them rather
// than living in one of them.
func WithOrigin(m ReadModel, origin func(domain.LedgerEntry) error) ReadModel {
	if origin == nil {
		return m
	}
	return originModel{ReadModel: m, origin: origin}
}

// originModel is a ReadModel behind an origin check.
type originModel struct {
	ReadModel
	origin func(domain.LedgerEntry) error
}

// checked is an entry the wrapped model prepared, with the outcome of its
// origin check.
type checked struct {
	prepared any
	offset   int64
	origin   error
}

// Prepare implements Batched: the model's Prepare, and the origin check.
func (o originModel) Prepare(e domain.LedgerEntry) (any, bool, error) {
	p, ok, err := o.ReadModel.Prepare(e)
	if err != nil || !ok {
		return p, ok, err
	}
	return checked{prepared: p, offset: e.Offset, origin: o.origin(e)}, true, nil
}

// Apply implements Projection: ApplyBatch for one entry.
func (o originModel) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	p, ok, err := o.Prepare(e)
	if err != nil || !ok {
		return err
	}
	return o.ApplyBatch(ctx, tx, []any{p})
}

// ApplyBatch implements Batched: it fails for the first entry whose
// origin did not verify and that no checkpoint covers (one lookup of the
// failing entries, none when all verify), else applies them all.
func (o originModel) ApplyBatch(ctx context.Context, tx pgx.Tx, prepared []any) error {
	inner, errs, err := refuseUnproven(ctx, tx, prepared)
	if err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return o.ReadModel.ApplyBatch(ctx, tx, inner)
}

// WithTable implements ReadModel: the same check on the other table.
func (o originModel) WithTable(table string) ReadModel {
	return originModel{ReadModel: o.ReadModel.WithTable(table), origin: o.origin}
}

// NewFold implements ReadModel: a fold of the model's own prepared
// entries. foldLedger checks origins before it adds (CheckPrepared).
func (o originModel) NewFold() Fold { return originFold{o.ReadModel.NewFold()} }

// CheckPrepared returns, for each of a batch's prepared entries, the error
// applying it would give for its origin (nil when it verified or a
// checkpoint covers it): a rebuild skips those as the live runner does.
func (o originModel) CheckPrepared(ctx context.Context, q eventstore.Querier, prepared []any) ([]error, error) {
	_, errs, err := refuseUnproven(ctx, q, prepared)
	return errs, err
}

// preparedChecker is implemented by a ReadModel whose prepared entries may
// be refused before a fold adds them (originModel).
type preparedChecker interface {
	CheckPrepared(ctx context.Context, q eventstore.Querier, prepared []any) ([]error, error)
}

type originFold struct{ Fold }

// Add implements Fold.
func (f originFold) Add(prepared any) { f.Fold.Add(prepared.(checked).prepared) }

// refuseUnproven unwraps prepared entries and returns, for each, nil or
// ErrOriginUnverified with the reason when its origin did not verify and
// no signed checkpoint covers it.
func refuseUnproven(ctx context.Context, q eventstore.Querier, prepared []any) ([]any, []error, error) {
	inner := make([]any, len(prepared))
	errs := make([]error, len(prepared))
	var offsets []int64
	for i, p := range prepared {
		c, ok := p.(checked)
		if !ok {
			return nil, nil, fmt.Errorf("origin check: prepared entry is %T, want checked", p)
		}
		inner[i] = c.prepared
		if c.origin != nil {
			offsets = append(offsets, c.offset)
		}
	}
	if len(offsets) == 0 {
		return inner, errs, nil
	}
	sealed, err := eventstore.CheckpointedOffsets(ctx, q, offsets)
	if err != nil {
		return nil, nil, err
	}
	for i, p := range prepared {
		if c := p.(checked); c.origin != nil && !sealed[c.offset] {
			errs[i] = fmt.Errorf("%w: %w", ErrOriginUnverified, c.origin)
		}
	}
	return inner, errs, nil
}
