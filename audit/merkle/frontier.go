package merkle

import "github.com/transparency-dev/merkle/compact"

// Frontier is the right edge of an append-only Merkle tree: the roots of
// the perfect subtrees that its leaves decompose into, one for each set bit
// of the size. It is the library's compact range (compact.Range) over
// [0, size): it computes the same roots as Tree in O(log n) memory, but
// cannot produce proofs; a sealer that only signs the root of a growing
// tree needs nothing more.
//
// The zero value is an empty tree. A Frontier is not safe for concurrent
// use.
type Frontier struct {
	edge *compact.Range // nil until the first Append
}

// Append adds a leaf hash and returns its index (the size before the call).
func (f *Frontier) Append(leaf Hash) (index uint64) {
	if f.edge == nil {
		f.edge = ranges.NewEmptyRange(0)
	}
	index = f.edge.End()
	appendLeaf(f.edge, leaf, nil)
	return index
}

// Size returns the number of leaves.
func (f *Frontier) Size() uint64 {
	if f.edge == nil {
		return 0
	}
	return f.edge.End()
}

// Root returns the Merkle Tree Hash of the leaves appended so far;
// EmptyRoot() if there are none.
func (f *Frontier) Root() Hash {
	if f.edge == nil {
		return EmptyRoot()
	}
	return rangeRoot(f.edge)
}

// appendLeaf appends leaf to a compact range that starts at 0, reporting
// every node it completes to visit (if not nil).
func appendLeaf(r *compact.Range, leaf Hash, visit compact.VisitFn) {
	// The range keeps the slice it is given: leaf is this call's own copy.
	if err := r.Append(leaf[:], visit); err != nil {
		// Append of one leaf to a range starting at 0 cannot fail.
		panic("merkle: compact range append: " + err.Error())
	}
}

// rangeRoot returns the root of a compact range that starts at 0.
func rangeRoot(r *compact.Range) Hash {
	root, err := r.GetRootHash(nil)
	if err != nil {
		// Only a range that does not start at 0 has no root.
		panic("merkle: compact range root: " + err.Error())
	}
	if root == nil { // empty range
		return EmptyRoot()
	}
	return toHash(root)
}
