package merkle

// Frontier is the right edge of an append-only Merkle tree: the roots of
// the perfect subtrees that its leaves decompose into, largest first, one
// for each set bit of the size. It computes the same roots as Tree in
// O(log n) memory, but cannot produce proofs; a sealer that only signs the
// root of a growing tree needs nothing more.
//
// The zero value is an empty tree. A Frontier is not safe for concurrent
// use.
type Frontier struct {
	size  uint64
	roots []Hash // roots[i] covers 2^(bit i of size, from the top) leaves
}

// Append adds a leaf hash and returns its index (the size before the call).
func (f *Frontier) Append(leaf Hash) (index uint64) {
	index = f.size
	h := leaf
	// Each trailing one bit of the old size is a perfect subtree of the
	// same height as h: merge it, as adding 1 carries through that bit.
	for s := f.size; s&1 == 1; s >>= 1 {
		last := len(f.roots) - 1
		h = NodeHash(f.roots[last], h)
		f.roots = f.roots[:last]
	}
	f.roots = append(f.roots, h)
	f.size++
	return index
}

// Size returns the number of leaves.
func (f *Frontier) Size() uint64 { return f.size }

// Root returns the Merkle Tree Hash of the leaves appended so far;
// EmptyRoot() if there are none. Folding the subtree roots from the
// smallest up is the MTH recursion: the largest perfect subtree is the
// left part D[0:k], the rest the right part D[k:n].
func (f *Frontier) Root() Hash {
	if len(f.roots) == 0 {
		return EmptyRoot()
	}
	r := f.roots[len(f.roots)-1]
	for i := len(f.roots) - 2; i >= 0; i-- {
		r = NodeHash(f.roots[i], r)
	}
	return r
}
