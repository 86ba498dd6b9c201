package bundle

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// VerifyLedgerSource is what VerifyLedger reads; *eventstore.Store is one.
type VerifyLedgerSource interface {
	// EachLedgerRow calls fn for every ledger row with its ledger index and
	// stored leaf hash (indexed false when not sealed yet), sealed rows
	// first in index order.
	EachLedgerRow(ctx context.Context, fn func(e domain.LedgerEntry, index uint64, leaf merkle.Hash, indexed bool) error) error
	// Checkpoints returns every checkpoint, smallest tree first.
	Checkpoints(ctx context.Context) ([]seal.Checkpoint, error)
	// Cosignatures returns the witnesses' cosignatures on the checkpoint
	// of tree size size.
	Cosignatures(ctx context.Context, size uint64) ([]seal.Cosignature, error)
}

// VerifyLedger re-checks the whole live ledger: every leaf hash recomputed
// from its ledger_events row and compared with ledger_index, indexes
// gapless from 0, every checkpoint's signature and root (against the tree
// of recomputed leaves, and the latest also against an independent
// recursive computation), and the consistency proof between each pair of
// successive checkpoints. The checkpoints are read before the rows, so a
// checkpoint signed while the ledger is read is not seen (a live ledger
// verifies). Rows not sealed yet are counted, not checked.
// Every checkpoint must be signed by one of opts.TrustedKeys (required:
// whoever can write to the database could otherwise re-sign it all with a
// key of their own). The error is ErrNoTrustedKey without trusted keys, and
// otherwise non-nil only when the ledger could not be read; failed checks
// are in Report.Problems (see Report.Err).
func VerifyLedger(ctx context.Context, src VerifyLedgerSource, opts VerifyOptions) (Report, error) {
	if len(opts.TrustedKeys) == 0 {
		return Report{}, ErrNoTrustedKey
	}
	// Checkpoints first, then rows: on a live ledger the sealer may index
	// and sign more between the two reads. Read after the rows, the latest
	// checkpoint could cover rows this run did not read (a false failure);
	// read before, every checkpoint covers only rows that are there when
	// the rows are read, the ledger being append-only.
	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return Report{}, err
	}
	var r Report
	var leaves []merkle.Hash
	tree := &merkle.Tree{}
	firstEntryProblem := ""
	err = src.EachLedgerRow(ctx, func(le domain.LedgerEntry, index uint64, stored merkle.Hash, indexed bool) error {
		if !indexed {
			r.Unsealed++
			return nil
		}
		e := seal.EntryFromLedger(le)
		got := seal.ComputeLeafHash(&e)
		if firstEntryProblem == "" {
			switch {
			case index != uint64(len(leaves)):
				firstEntryProblem = fmt.Sprintf("ledger index %d is missing (offset %d has index %d)", len(leaves), le.Offset, index)
			case got != stored:
				firstEntryProblem = fmt.Sprintf("ledger index %d (offset %d, svix_id %s): the ledger_events row does not match its sealed leaf hash (recomputed %s, ledger_index has %s): the row was altered", index, le.Offset, le.SvixID, got, stored)
			}
		}
		leaves = append(leaves, got)
		tree.Append(got)
		r.Entries++
		if opts.Progress != nil {
			opts.Progress.Add(1)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	if firstEntryProblem != "" {
		r.Problems = append(r.Problems, firstEntryProblem)
	}
	var prev *seal.Checkpoint
	for i := range cps {
		cp := cps[i]
		r.Checkpoints++
		r.Checkpoint = cp
		if err := cp.VerifySignature(opts.TrustedKeys...); err != nil {
			r.Problems = append(r.Problems, err.Error())
		}
		root, err := tree.RootAt(cp.TreeSize)
		if err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("checkpoint of tree size %d: the ledger has only %d sealed entries", cp.TreeSize, tree.Size()))
			continue
		}
		if root != cp.RootHash {
			r.Problems = append(r.Problems, fmt.Sprintf("checkpoint of tree size %d: root %s does not match the root %s recomputed from ledger_events", cp.TreeSize, cp.RootHash, root))
		}
		if prev != nil {
			proof, err := tree.ConsistencyProof(prev.TreeSize, cp.TreeSize)
			if err == nil {
				err = merkle.VerifyConsistency(prev.TreeSize, cp.TreeSize, prev.RootHash, cp.RootHash, proof)
			}
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("checkpoints of tree sizes %d and %d are not consistent: %v", prev.TreeSize, cp.TreeSize, err))
			}
		}
		prev = &cps[i]
	}
	keys := append([]ed25519.PublicKey{}, opts.TrustedKeys...)
	if prev != nil {
		keys = append(keys, prev.PublicKey)
	}
	for _, k := range opts.Known {
		if p := checkKnown(k, keys, tree); p != "" {
			r.Problems = append(r.Problems, p)
		}
	}
	if len(opts.Witnesses) > 0 {
		if prev == nil {
			r.Problems = append(r.Problems, "the ledger has no checkpoint: no witness cosignature to check")
		} else {
			cosigs, err := src.Cosignatures(ctx, prev.TreeSize)
			if err != nil {
				return r, err
			}
			if err := seal.CheckCosignatures(*prev, cosigs, opts.Witnesses); err != nil {
				r.Problems = append(r.Problems, "latest "+err.Error())
			} else {
				r.Witnessed = true
			}
		}
	}
	if prev != nil && prev.TreeSize <= uint64(len(leaves)) {
		if root := merkle.RootFromLeaves(leaves[:prev.TreeSize]); root != prev.RootHash {
			r.Problems = append(r.Problems, fmt.Sprintf("checkpoint of tree size %d: independent root computation gives %s, not %s", prev.TreeSize, root, prev.RootHash))
		}
	}
	return r, nil
}
