package merkle

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// ErrOutOfRange is matched (errors.Is) by the errors a Tree returns when asked
// about a size or leaf index it does not hold.
var ErrOutOfRange = errors.New("merkle: out of range")

// storedFrom is the lowest subtree height whose complete-subtree hashes a Tree
// stores. Heights 1 to storedFrom-1 are recomputed from the leaves when
// needed (at most 2^(storedFrom-1)-1 = 7 hashes each), which saves 28 bytes
// a leaf compared with storing every level.
const storedFrom = 4

// Tree is an append-only, in-memory Merkle tree over leaf hashes that can
// return the root of, and inclusion and consistency proofs for, its current
// size and every earlier size.
//
// The zero value is an empty tree ready to use. A Tree is safe for concurrent
// use: Append excludes the other methods, which may run in parallel. A Tree
// must not be copied after first use.
type Tree struct {
	mu sync.RWMutex
	// leaves holds every leaf hash, in index order (height 0).
	leaves []Hash
	// levels[j][i] is the hash of the complete subtree of height
	// storedFrom+j that covers leaves [i<<h, (i+1)<<h), h = storedFrom+j.
	// Only complete subtrees are stored.
	levels [][]Hash
}

// NewTree returns a Tree holding the given leaf hashes, in order, as if each
// had been passed to Append. It copies leaves and costs about one hash per
// leaf; this is how a sealer restores its tree from persisted leaf hashes.
func NewTree(leaves []Hash) *Tree {
	n := uint64(len(leaves))
	t := &Tree{leaves: append(make([]Hash, 0, n), leaves...)}
	for h := uint(storedFrom); n>>h > 0; h++ {
		count := n >> h
		level := make([]Hash, count)
		t.levels = append(t.levels, level) // visible to t.perfect for h+1
		for i := range count {
			level[i] = t.fromChildren(h, i)
		}
	}
	return t
}

// Append adds a leaf hash to the tree and returns its index (the tree size
// before the call).
func (t *Tree) Append(leaf Hash) (index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	index = uint64(len(t.leaves))
	t.leaves = append(t.leaves, leaf)
	size := index + 1
	// Record every stored-height subtree that this leaf completes.
	for h := uint(storedFrom); h < 64 && size&(1<<h-1) == 0; h++ {
		j := h - storedFrom
		if j == uint(len(t.levels)) {
			t.levels = append(t.levels, nil)
		}
		t.levels[j] = append(t.levels[j], t.fromChildren(h, size>>h-1))
	}
	return index
}

// Size returns the number of leaves in the tree.
func (t *Tree) Size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return uint64(len(t.leaves))
}

// Root returns the root (Merkle Tree Hash) of all leaves currently in the
// tree; EmptyRoot() if there are none. It costs O(log n).
func (t *Tree) Root() Hash {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.root(uint64(len(t.leaves)))
}

// RootAt returns the root the tree had when it held its first size leaves.
func (t *Tree) RootAt(size uint64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if have := uint64(len(t.leaves)); size > have {
		return Hash{}, fmt.Errorf("%w: root at tree size %d: tree has only %d leaves", ErrOutOfRange, size, have)
	}
	return t.root(size), nil
}

// InclusionProof returns the RFC 6962 §2.1.1 audit path proving that leaf
// index is included in the tree of the given size (a size the tree has or
// had), ordered from the leaf upwards. It is empty for a tree of one leaf.
func (t *Tree) InclusionProof(index, size uint64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if have := uint64(len(t.leaves)); size > have {
		return nil, fmt.Errorf("%w: inclusion proof for leaf %d of tree size %d: tree has only %d leaves", ErrOutOfRange, index, size, have)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: inclusion proof for leaf %d of tree size %d: index not below size", ErrOutOfRange, index, size)
	}
	proof := make([]Hash, 0, inclusionProofLen(index, size))
	return t.inclusion(index, 0, size, proof), nil
}

// ConsistencyProof returns the RFC 6962 §2.1.2 proof that the tree of
// newSize leaves extends the tree of oldSize leaves (both sizes the tree has
// or had). It is empty when oldSize is 0 or equals newSize.
func (t *Tree) ConsistencyProof(oldSize, newSize uint64) ([]Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if have := uint64(len(t.leaves)); newSize > have {
		return nil, fmt.Errorf("%w: consistency proof from tree size %d to %d: tree has only %d leaves", ErrOutOfRange, oldSize, newSize, have)
	}
	if oldSize > newSize {
		return nil, fmt.Errorf("%w: consistency proof from tree size %d to %d: old size exceeds new size", ErrOutOfRange, oldSize, newSize)
	}
	if oldSize == 0 || oldSize == newSize {
		return []Hash{}, nil
	}
	proof := make([]Hash, 0, consistencyProofLen(oldSize, newSize))
	return t.subproof(oldSize, 0, newSize, true, proof), nil
}

// root returns MTH of the first size leaves. Caller holds t.mu.
func (t *Tree) root(size uint64) Hash {
	if size == 0 {
		return EmptyRoot()
	}
	return t.subtree(0, size)
}

// perfect returns the hash of the complete subtree of the given height whose
// leftmost leaf is index<<height. Caller holds t.mu.
func (t *Tree) perfect(height uint, index uint64) Hash {
	switch {
	case height == 0:
		return t.leaves[index]
	case height >= storedFrom:
		return t.levels[height-storedFrom][index]
	default:
		return t.fromChildren(height, index)
	}
}

// fromChildren computes the complete subtree (height, index) from its two
// children.
func (t *Tree) fromChildren(height uint, index uint64) Hash {
	return NodeHash(t.perfect(height-1, 2*index), t.perfect(height-1, 2*index+1))
}

// subtree returns MTH(D[start:start+n]) for n >= 1, where start is a multiple
// of the largest power of two not above n (true of every range the RFC 6962
// recursion visits). Such a range splits into complete subtrees whose sizes
// are the set bits of n, largest first; MTH folds them from the right.
func (t *Tree) subtree(start, n uint64) Hash {
	end := start + n
	var acc Hash
	for rem, first := n, true; rem != 0; first = false {
		height := uint(bits.TrailingZeros64(rem))
		end -= 1 << height
		h := t.perfect(height, end>>height)
		if first {
			acc = h
		} else {
			acc = NodeHash(h, acc)
		}
		rem &^= 1 << height
	}
	return acc
}

// inclusion appends PATH(index, D[start:start+n]) of RFC 6962 §2.1.1 to out;
// index is relative to start.
func (t *Tree) inclusion(index, start, n uint64, out []Hash) []Hash {
	if n == 1 {
		return out
	}
	k := largestPowerOfTwoBelow(n)
	if index < k {
		out = t.inclusion(index, start, k, out)
		return append(out, t.subtree(start+k, n-k))
	}
	out = t.inclusion(index-k, start+k, n-k, out)
	return append(out, t.subtree(start, k))
}

// subproof appends SUBPROOF(m, D[start:start+n], complete) of RFC 6962 §2.1.2
// to out, for 0 < m <= n.
func (t *Tree) subproof(m, start, n uint64, complete bool, out []Hash) []Hash {
	if m == n {
		if complete {
			return out
		}
		return append(out, t.subtree(start, n))
	}
	k := largestPowerOfTwoBelow(n)
	if m <= k {
		out = t.subproof(m, start, k, complete, out)
		return append(out, t.subtree(start+k, n-k))
	}
	out = t.subproof(m-k, start+k, n-k, false, out)
	return append(out, t.subtree(start, k))
}
