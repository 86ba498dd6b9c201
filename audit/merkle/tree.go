package merkle

import (
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
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
// It is storage for the library's algorithms: a compact range computes the
// node hashes as leaves are appended, proof.Inclusion and proof.Consistency
// say which nodes a proof needs, and Tree only keeps and looks up those
// nodes.
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
	// edge is the compact range over all leaves; appending to it yields
	// every complete subtree's hash once. nil until the first Append.
	edge *compact.Range
}

// NewTree returns a Tree holding the given leaf hashes, in order, as if each
// had been passed to Append. It copies leaves and costs about one hash per
// leaf; this is how a sealer restores its tree from persisted leaf hashes.
func NewTree(leaves []Hash) *Tree {
	n := uint64(len(leaves))
	t := &Tree{leaves: make([]Hash, 0, n)}
	for h := uint(storedFrom); n>>h > 0; h++ {
		t.levels = append(t.levels, make([]Hash, 0, n>>h))
	}
	for _, l := range leaves {
		t.append(l)
	}
	return t
}

// Append adds a leaf hash to the tree and returns its index (the tree size
// before the call).
func (t *Tree) Append(leaf Hash) (index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.append(leaf)
}

// append is Append; the caller holds t.mu or has t to itself.
func (t *Tree) append(leaf Hash) uint64 {
	if t.edge == nil {
		t.edge = ranges.NewEmptyRange(0)
	}
	index := uint64(len(t.leaves))
	t.leaves = append(t.leaves, leaf)
	appendLeaf(t.edge, leaf, t.keep)
	return index
}

// keep records a complete subtree that the compact range has just computed,
// if its height is stored. Nodes of each height complete in index order.
func (t *Tree) keep(id compact.NodeID, hash []byte) {
	if id.Level < storedFrom {
		return
	}
	j := int(id.Level - storedFrom)
	if j == len(t.levels) {
		t.levels = append(t.levels, nil)
	}
	t.levels[j] = append(t.levels[j], toHash(hash))
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
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof for leaf %d of tree size %d: %w", index, size, err)
	}
	return t.rehash(nodes)
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
	nodes, err := proof.Consistency(oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof from tree size %d to %d: %w", oldSize, newSize, err)
	}
	return t.rehash(nodes)
}

// rehash fetches the nodes a proof needs and lets the library combine those
// that make up its one imperfect subtree. Caller holds t.mu.
func (t *Tree) rehash(nodes proof.Nodes) ([]Hash, error) {
	hashes := make([]Hash, len(nodes.IDs))
	for i, id := range nodes.IDs {
		hashes[i] = t.node(id)
	}
	combined, err := nodes.Rehash(toBytes(hashes), hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("merkle: building proof: %w", err)
	}
	out := make([]Hash, len(combined))
	for i, h := range combined {
		out[i] = toHash(h)
	}
	return out, nil
}

// root returns MTH of the first size leaves: the library's compact range
// over [0, size), from the complete subtrees that cover it. Caller holds
// t.mu.
func (t *Tree) root(size uint64) Hash {
	if size == 0 {
		return EmptyRoot()
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([]Hash, len(ids))
	for i, id := range ids {
		hashes[i] = t.node(id)
	}
	r, err := ranges.NewRange(0, size, toBytes(hashes))
	if err != nil {
		// RangeNodes gave exactly the nodes NewRange wants.
		panic("merkle: compact range: " + err.Error())
	}
	return rangeRoot(r)
}

// node returns the hash of a complete subtree the tree holds. Caller holds
// t.mu.
func (t *Tree) node(id compact.NodeID) Hash {
	return t.perfect(id.Level, id.Index)
}

// perfect returns the hash of the complete subtree of the given height whose
// leftmost leaf is index<<height. Caller holds t.mu.
func (t *Tree) perfect(height uint, index uint64) Hash {
	switch {
	case height == 0:
		return t.leaves[index]
	case height >= storedFrom:
		return t.levels[height-storedFrom][index]
	default: // not stored: at most 7 hashes from the leaves
		return NodeHash(t.perfect(height-1, 2*index), t.perfect(height-1, 2*index+1))
	}
}
