package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// Failure is a row of projection_failures: a ledger entry a projection
// could not apply and skipped.
type Failure struct {
	Projection string    `json:"projection"`
	Offset     int64     `json:"ledger_offset"`
	SvixID     string    `json:"svix_id"`
	EventType  string    `json:"event_type"`
	Error      string    `json:"error"`
	Attempts   int       `json:"attempts"`
	FailedAt   time.Time `json:"failed_at"`
}

// FailureFilter selects failures: by projection name and ledger offset
// when set.
type FailureFilter struct {
	Projection string
	Offset     int64
}

// Failures lists the recorded failures f selects, in projection then
// ledger order.
func Failures(ctx context.Context, q eventstore.Querier, f FailureFilter) ([]Failure, error) {
	rows, err := q.Query(ctx, `
		SELECT projection, ledger_offset, svix_id, event_type, error, attempts, failed_at FROM projection_failures
		WHERE ($1 = '' OR projection = $1) AND ($2 = 0 OR ledger_offset = $2)
		ORDER BY projection, ledger_offset`, f.Projection, f.Offset)
	if err != nil {
		return nil, fmt.Errorf("read projection_failures: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Failure])
	if err != nil {
		return nil, fmt.Errorf("read projection_failures: %w", err)
	}
	return out, nil
}

// Retry outcomes.
const (
	// RetryApplied: the entry applied; its failure record is removed.
	RetryApplied = "applied"
	// RetryFailed: it failed again; the record holds the new error and one
	// more attempt.
	RetryFailed = "failed"
)

// RetryResult is what retrying one failure did.
type RetryResult struct {
	Failure
	Outcome string `json:"outcome"`
	// Cause is why it failed again (Outcome RetryFailed).
	Cause string `json:"cause,omitempty"`
}

// RetryFailures applies the failures f selects again, each with its live
// projection's code, in a transaction of its own that locks the
// projection's position (pausing the live projection meanwhile). An entry
// that applies has its record removed; one that fails again keeps it, with
// the new error and one more attempt. The read models' rules do not depend
// on the order entries arrive in, so applying a skipped entry late gives the
// row in-order delivery gives; the exception is webhookd's own access
// changes to users, applied in ledger order: retrying an old one over a
// newer one would undo the newer (`webhookd replay users` applies every
// entry in order). origin is the live projections' origin check
// (WithOrigin): a retry applies nothing the live projection would refuse.
func RetryFailures(ctx context.Context, pool *pgxpool.Pool, f FailureFilter, origin func(domain.LedgerEntry) error) ([]RetryResult, error) {
	failures, err := Failures(ctx, pool, f)
	if err != nil {
		return nil, err
	}
	var out []RetryResult
	for _, fl := range failures {
		model, err := ByName(fl.Projection)
		if err != nil {
			return out, fmt.Errorf("ledger offset %d: %w", fl.Offset, err)
		}
		m := WithOrigin(model, origin)
		result := RetryResult{Failure: fl, Outcome: RetryApplied}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := eventstore.ConsumerPosition(ctx, tx, ConsumerGroup(m.Name())); err != nil {
				return err
			}
			e, err := eventstore.EntryAt(ctx, tx, fl.Offset)
			if err != nil {
				return err
			}
			if applyErr := applyInSavepoint(ctx, tx, m, e); applyErr != nil {
				if eventstore.IsUnavailable(applyErr) {
					return applyErr
				}
				result.Outcome, result.Cause = RetryFailed, redact.SafeError(applyErr)
				result.Attempts++
				return RecordFailure(ctx, tx, m.Name(), e, applyErr, result.Attempts, true)
			}
			_, err = tx.Exec(ctx, `DELETE FROM projection_failures WHERE projection = $1 AND ledger_offset = $2`, m.Name(), fl.Offset)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("retry %s ledger offset %d: %w", fl.Projection, fl.Offset, err)
		}
		out = append(out, result)
	}
	return out, nil
}

// ErrNoFailures is returned when a retry selects no recorded failure.
var ErrNoFailures = errors.New("no recorded projection failure matches")
