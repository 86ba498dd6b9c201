package admin

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/projections"
)

// Appender appends to the ledger; *eventstore.Store is one.
type Appender interface {
	Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error)
}

// Recorder appends webhookd's own entries: built with
// domain.NewInternalEntry and, when Key is set, signed with
// seal.SignInternalEntry so the sealer's origin check accepts them.
type Recorder struct {
	Ledger Appender
	// Key is the ledger's signing key; nil only for a ledger that is not
	// sealed (no checkpoint key configured).
	Key ed25519.PrivateKey
	// Now defaults to time.Now.
	Now func() time.Time
}

func (r *Recorder) now() time.Time {
	if r.Now == nil {
		return time.Now().UTC()
	}
	return r.Now().UTC()
}

// Record appends one entry of eventType about subject with data, and
// returns once it is committed.
func (r *Recorder) Record(ctx context.Context, eventType, subject string, data any) error {
	_, err := r.RecordEntry(ctx, eventType, subject, data)
	return err
}

// RecordEntry is Record returning the entry appended.
func (r *Recorder) RecordEntry(ctx context.Context, eventType, subject string, data any) (domain.LedgerEntry, error) {
	entry, err := domain.NewInternalEntry(eventType, subject, data, r.now())
	if err != nil {
		return domain.LedgerEntry{}, err
	}
	if r.Key != nil {
		seal.SignInternalEntry(r.Key, &entry)
	}
	if _, err := r.Ledger.Append(ctx, entry); err != nil {
		if domain.ErrorCode(err) == domain.EINTERNAL {
			return domain.LedgerEntry{}, fmt.Errorf("record %s: %w", eventType, err)
		}
		return domain.LedgerEntry{}, err
	}
	return entry, nil
}

// RecordAccessChange validates change and appends it as a
// webhookd.user.access_changed event, which the users projection applies:
// the one implementation behind `webhookd users assign` and POST
// /api/users/{id}/access. Unless force, a practice must be an active one
// in the practices table.
func RecordAccessChange(ctx context.Context, q eventstore.Querier, r *Recorder, change domain.AccessChange, force bool) (domain.LedgerEntry, error) {
	if err := change.Validate(); err != nil {
		return domain.LedgerEntry{}, err
	}
	// The check is here, not in the projection: the ledger records what
	// the operator decided, and the users projection applies it whatever
	// the order organization events arrive in.
	if change.PracticeID != nil && *change.PracticeID != "" && !force {
		state, err := projections.LookupPractice(ctx, q, *change.PracticeID)
		if err != nil {
			return domain.LedgerEntry{}, unavailable(err)
		}
		switch state {
		case projections.PracticeUnknown:
			return domain.LedgerEntry{}, domain.Errorf(domain.EINVALID, "unknown_practice", "practice %q is not in the practices table (no organization.created for it has been applied); check the id, or give --force to assign it anyway", *change.PracticeID)
		case projections.PracticeDeleted:
			return domain.LedgerEntry{}, domain.Errorf(domain.EINVALID, "deleted_practice", "practice %q is deleted (organization.deleted); give --force to assign it anyway", *change.PracticeID)
		}
	}
	return r.RecordEntry(ctx, domain.EventUserAccessChanged, change.ClerkID, change)
}
