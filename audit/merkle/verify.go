package merkle

import (
	"errors"
	"fmt"
	"math/bits"
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

// inclusionProofLen is the number of hashes in the audit path of leaf index
// in a tree of size leaves (index < size): one per level below the point
// where the leaf's path and the tree's right border diverge, plus one per
// left-hand complete subtree above it.
func inclusionProofLen(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	return inner + bits.OnesCount64(index>>inner)
}

// consistencyProofLen is the number of hashes in the consistency proof from
// oldSize to newSize leaves, 0 < oldSize < newSize: the audit path of leaf
// oldSize-1 in the new tree minus the levels inside the largest complete
// subtree that ends at oldSize, plus that subtree's own hash unless it is the
// whole old tree.
func consistencyProofLen(oldSize, newSize uint64) int {
	n := inclusionProofLen(oldSize-1, newSize) - bits.TrailingZeros64(oldSize)
	if oldSize&(oldSize-1) != 0 {
		n++
	}
	return n
}

// VerifyInclusion checks that proof proves that leaf (a leaf hash) is the
// leaf at index in the tree of the given size whose root is root, using the
// algorithm of RFC 9162 §2.1.3.2. It needs no tree and costs O(log size).
// It returns nil on success and otherwise an error matching
// ErrVerificationFailed.
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return failf("inclusion proof for leaf %d of tree size %d: index not below size", index, size)
	}
	if got, want := len(proof), inclusionProofLen(index, size); got != want {
		return failf("inclusion proof for leaf %d of tree size %d: proof has %d hashes, want %d", index, size, got, want)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return failf("inclusion proof for leaf %d of tree size %d: proof too long", index, size)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return failf("inclusion proof for leaf %d of tree size %d: proof too short", index, size)
	}
	if r != root {
		return failf("inclusion proof for leaf %d of tree size %d: computed root %s does not match expected %s", index, size, short(r), short(root))
	}
	return nil
}

// VerifyConsistency checks that proof proves that the tree of newSize leaves
// with root newRoot is an append-only extension of the tree of oldSize leaves
// with root oldRoot, using the algorithm of RFC 9162 §2.1.4.2. It needs no
// tree and costs O(log newSize). It returns nil on success and otherwise an
// error matching ErrVerificationFailed.
//
// The cases that algorithm leaves out are settled as follows: oldSize must
// not exceed newSize; if oldSize equals newSize the proof must be empty and
// the roots equal; if oldSize is 0 the proof must be empty and oldRoot must
// be EmptyRoot() (and so must newRoot if newSize is also 0) — any tree
// extends the empty tree, so nothing is proved about newRoot then.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot Hash, proof []Hash) error {
	switch {
	case oldSize > newSize:
		return failf("consistency proof from tree size %d to %d: old size exceeds new size", oldSize, newSize)
	case oldSize == newSize || oldSize == 0:
		if len(proof) != 0 {
			return failf("consistency proof from tree size %d to %d: proof has %d hashes, want 0", oldSize, newSize, len(proof))
		}
		if oldSize == 0 && oldRoot != EmptyRoot() {
			return failf("consistency proof from tree size 0 to %d: old root %s is not the empty-tree root %s", newSize, short(oldRoot), short(EmptyRoot()))
		}
		if oldSize == newSize && oldRoot != newRoot {
			return failf("consistency proof from tree size %d to %d: old root %s differs from new root %s of the same size", oldSize, newSize, short(oldRoot), short(newRoot))
		}
		return nil
	}
	if got, want := len(proof), consistencyProofLen(oldSize, newSize); got != want {
		return failf("consistency proof from tree size %d to %d: proof has %d hashes, want %d", oldSize, newSize, got, want)
	}

	// Step 1: if oldSize is a power of two, the old root itself is the first
	// element of the path; otherwise the proof's first hash is.
	seed, rest := oldRoot, proof
	if oldSize&(oldSize-1) != 0 {
		seed, rest = proof[0], proof[1:]
	}
	// Steps 2–4.
	fn, sn := oldSize-1, newSize-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := seed, seed
	// Step 5.
	for _, c := range rest {
		if sn == 0 {
			return failf("consistency proof from tree size %d to %d: proof too long", oldSize, newSize)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	// Step 6.
	if sn != 0 {
		return failf("consistency proof from tree size %d to %d: proof too short", oldSize, newSize)
	}
	if fr != oldRoot {
		return failf("consistency proof from tree size %d to %d: computed old root %s does not match expected %s", oldSize, newSize, short(fr), short(oldRoot))
	}
	if sr != newRoot {
		return failf("consistency proof from tree size %d to %d: computed new root %s does not match expected %s", oldSize, newSize, short(sr), short(newRoot))
	}
	return nil
}
