package merkle

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// ErrVerificationFailed is matched (errors.Is) by every error that
// VerifyInclusion and VerifyConsistency return. The error's own message says
// what failed.
var ErrVerificationFailed = errors.New("merkle: verification failed")

// verifyError carries a specific message while matching ErrVerificationFailed.
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }
func (e *verifyError) Unwrap() error { return ErrVerificationFailed }

func failf(format string, args ...any) error {
	return &verifyError{msg: "merkle: " + fmt.Sprintf(format, args...)}
}

// proofLen is the number of hashes in the proof that the library builds
// from nodes: its node list, with the nodes of its one imperfect subtree
// (if any) combined into one hash.
func proofLen(nodes proof.Nodes) int {
	_, begin, end := nodes.Ephem()
	if end-begin > 1 {
		return len(nodes.IDs) - (end - begin) + 1
	}
	return len(nodes.IDs)
}

// VerifyInclusion checks that proof proves that leaf (a leaf hash) is the
// leaf at index in the tree of the given size whose root is root, with the
// library's proof.RootFromInclusionProof (RFC 9162 §2.1.3.2). It needs no
// tree and costs O(log size). It returns nil on success and otherwise an
// error matching ErrVerificationFailed.
func VerifyInclusion(leaf Hash, index, size uint64, path []Hash, root Hash) error {
	if index >= size {
		return failf("inclusion proof for leaf %d of tree size %d: index not below size", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return failf("inclusion proof for leaf %d of tree size %d: %v", index, size, err)
	}
	if got, want := len(path), proofLen(nodes); got != want {
		return failf("inclusion proof for leaf %d of tree size %d: proof has %d hashes, want %d", index, size, got, want)
	}
	got, err := proof.RootFromInclusionProof(hasher, index, size, leaf[:], toBytes(path))
	if err != nil {
		return failf("inclusion proof for leaf %d of tree size %d: %v", index, size, err)
	}
	if !bytes.Equal(got, root[:]) {
		return failf("inclusion proof for leaf %d of tree size %d: computed root %s does not match expected %s", index, size, short(got), short(root[:]))
	}
	return nil
}

// VerifyConsistency checks that proof proves that the tree of newSize leaves
// with root newRoot is an append-only extension of the tree of oldSize leaves
// with root oldRoot, with the library's proof.VerifyConsistency (RFC 9162
// §2.1.4.2). It needs no tree and costs O(log newSize). It returns nil on
// success and otherwise an error matching ErrVerificationFailed.
//
// The cases that algorithm leaves out are settled here, more strictly than
// the library does: oldSize must not exceed newSize; if oldSize equals
// newSize the proof must be empty and the roots equal; if oldSize is 0 the
// proof must be empty and oldRoot must be EmptyRoot() (and so must newRoot
// if newSize is also 0) — any tree extends the empty tree, so nothing is
// proved about newRoot then.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot Hash, path []Hash) error {
	switch {
	case oldSize > newSize:
		return failf("consistency proof from tree size %d to %d: old size exceeds new size", oldSize, newSize)
	case oldSize == newSize || oldSize == 0:
		if len(path) != 0 {
			return failf("consistency proof from tree size %d to %d: proof has %d hashes, want 0", oldSize, newSize, len(path))
		}
		if empty := EmptyRoot(); oldSize == 0 && oldRoot != empty {
			return failf("consistency proof from tree size 0 to %d: old root %s is not the empty-tree root %s", newSize, short(oldRoot[:]), short(empty[:]))
		}
		if oldSize == newSize && oldRoot != newRoot {
			return failf("consistency proof from tree size %d to %d: old root %s differs from new root %s of the same size", oldSize, newSize, short(oldRoot[:]), short(newRoot[:]))
		}
		return nil
	}
	nodes, err := proof.Consistency(oldSize, newSize)
	if err != nil {
		return failf("consistency proof from tree size %d to %d: %v", oldSize, newSize, err)
	}
	if got, want := len(path), proofLen(nodes); got != want {
		return failf("consistency proof from tree size %d to %d: proof has %d hashes, want %d", oldSize, newSize, got, want)
	}
	err = proof.VerifyConsistency(hasher, oldSize, newSize, toBytes(path), oldRoot[:], newRoot[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mismatch):
		// The library checks the old root first, then the new one, and
		// names neither: tell them apart by the root it expected (if the
		// two roots are equal, the message says old either way).
		which := "new"
		if bytes.Equal(mismatch.ExpectedRoot, oldRoot[:]) {
			which = "old"
		}
		return failf("consistency proof from tree size %d to %d: computed %s root %s does not match expected %s",
			oldSize, newSize, which, short(mismatch.CalculatedRoot), short(mismatch.ExpectedRoot))
	default:
		return failf("consistency proof from tree size %d to %d: %v", oldSize, newSize, err)
	}
}
