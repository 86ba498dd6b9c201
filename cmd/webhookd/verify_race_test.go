package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// sealsBetweenReads is the ledger as verify --db reads it, except that
// right after the first of its two reads (the rows, the checkpoints) the
// running webhookd takes one more delivery and its sealer signs a
// checkpoint covering it: the moment a live ledger's verification can
// always be caught in, made certain.
type sealsBetweenReads struct {
	*eventstore.Store
	once  sync.Once
	sealN func()
}

func (s *sealsBetweenReads) EachLedgerRow(ctx context.Context, fn func(e domain.LedgerEntry, index uint64, leaf merkle.Hash, indexed bool) error) error {
	err := s.Store.EachLedgerRow(ctx, fn)
	s.once.Do(s.sealN)
	return err
}

func (s *sealsBetweenReads) Checkpoints(ctx context.Context) ([]seal.Checkpoint, error) {
	cps, err := s.Store.Checkpoints(ctx)
	s.once.Do(s.sealN)
	return cps, err
}

// verify --db on a ledger the sealer signs while it is read passes: a
// checkpoint signed between the read of the rows and the read of the
// checkpoints must not read as a checkpoint over rows that are missing.
// Not parallel: it replaces ledgerSource.
func TestVerifyDBWhileTheSealerSignsPasses(t *testing.T) {
	h := start(t, withSeal(sealKey))
	h.deliverN(0, 5)
	h.waitCheckpoint(5)
	ctx := context.Background()
	delivered := 5
	ledgerSource = func(s *eventstore.Store) bundle.VerifyLedgerSource {
		return &sealsBetweenReads{Store: s, sealN: func() {
			h.deliverN(delivered, 1)
			delivered++
			require.Eventually(t, func() bool {
				cp, err := h.store.LatestCheckpoint(ctx)
				return err == nil && cp.TreeSize >= uint64(delivered)
			}, 30*time.Second, 5*time.Millisecond, "the sealer signs the new delivery")
		}}
	}
	t.Cleanup(func() { ledgerSource = func(s *eventstore.Store) bundle.VerifyLedgerSource { return s } })

	g, out := testGlobals()
	err := (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText}).Run(ctx, g)
	require.NoError(t, err, "report: %s", out.String())
	require.Equal(t, 6, delivered, "the sealer signed once between the two reads")
	require.Regexp(t, `^OK: \d+ sealed entries, \d+ checkpoints \(latest tree size \d+, signed by key `+sealKeyID, out.String())

	// And the ledger as it is now, still whole, verifies.
	out.Reset()
	ledgerSource = func(s *eventstore.Store) bundle.VerifyLedgerSource { return s }
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText}).Run(ctx, g), "report: %s", out.String())
}
