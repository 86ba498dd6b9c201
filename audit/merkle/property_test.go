package merkle_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/webhookd/webhookd/audit/merkle"
)

// propMax is the largest tree size the exhaustive property tests cover.
const propMax = 70

// testLeaves returns n distinct leaf hashes.
func testLeaves(n int) []merkle.Hash {
	leaves := make([]merkle.Hash, n)
	for i := range leaves {
		leaves[i] = merkle.LeafHash(fmt.Appendf(nil, "ledger entry %d", i))
	}
	return leaves
}

// referenceRoots returns RootFromLeaves of every prefix of leaves, indexed by
// size.
func referenceRoots(leaves []merkle.Hash) []merkle.Hash {
	roots := make([]merkle.Hash, len(leaves)+1)
	for n := range roots {
		roots[n] = merkle.RootFromLeaves(leaves[:n])
	}
	return roots
}

// flipBits returns the bit positions the mutation tests flip in each hash:
// all 256, or with -short one per byte (a different position in each).
func flipBits() []int {
	var out []int
	for bit := range 8 * merkle.HashSize {
		if !testing.Short() || bit%8 == (bit/8)%8 {
			out = append(out, bit)
		}
	}
	return out
}

func flipBit(h merkle.Hash, bit int) merkle.Hash {
	h[bit/8] ^= 1 << (bit % 8)
	return h
}

func cloneWith(proof []merkle.Hash, i int, h merkle.Hash) []merkle.Hash {
	out := append([]merkle.Hash(nil), proof...)
	out[i] = h
	return out
}

// proofVariants returns structurally damaged copies of proof: each one
// truncated, extended, reordered or with a hash dropped.
func proofVariants(proof []merkle.Hash, extra ...merkle.Hash) map[string][]merkle.Hash {
	v := map[string][]merkle.Hash{}
	for k, e := range append(extra, merkle.Hash{}) {
		v[fmt.Sprintf("appended extra %d", k)] = append(append([]merkle.Hash(nil), proof...), e)
		v[fmt.Sprintf("prepended extra %d", k)] = append([]merkle.Hash{e}, proof...)
	}
	if len(proof) > 0 {
		v["truncated"] = proof[:len(proof)-1]
		v["first dropped"] = proof[1:]
		v["first repeated"] = append([]merkle.Hash{proof[0]}, proof...)
	}
	for i := 0; i+1 < len(proof); i++ {
		swapped := append([]merkle.Hash(nil), proof...)
		swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
		v[fmt.Sprintf("hashes %d and %d swapped", i, i+1)] = swapped
	}
	return v
}

// requireRejected fails the test unless err is a verification failure. It
// only calls into testing/testify on failure: it runs millions of times.
func requireRejected(t *testing.T, err error, format string, args ...any) {
	if !errors.Is(err, merkle.ErrVerificationFailed) {
		t.Helper()
		require.Failf(t, "verification did not reject a bad input", format+fmt.Sprintf(" (got error %v)", err), args...)
	}
}

func TestPropertyRoots(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(propMax)
	roots := referenceRoots(leaves)
	full := merkle.NewTree(leaves)
	var grown merkle.Tree
	for n := 0; n <= propMax; n++ {
		if n > 0 {
			require.Equal(t, uint64(n-1), grown.Append(leaves[n-1]))
		}
		require.Equal(t, uint64(n), grown.Size())
		require.Equal(t, roots[n], grown.Root(), "Root after %d appends", n)
		require.Equal(t, roots[n], merkle.NewTree(leaves[:n]).Root(), "NewTree(%d).Root", n)
		got, err := full.RootAt(uint64(n))
		require.NoError(t, err)
		require.Equal(t, roots[n], got, "RootAt(%d)", n)
		got, err = grown.RootAt(uint64(n))
		require.NoError(t, err)
		require.Equal(t, roots[n], got, "grown RootAt(%d)", n)
	}
}

// TestPropertyInclusion checks, for every tree size 1..propMax and every
// leaf, that the proof from a larger tree equals the proof from a tree of
// exactly that size, that it verifies against the independently computed
// root, and that every damaged variant is rejected.
func TestPropertyInclusion(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(propMax)
	roots := referenceRoots(leaves)
	full := merkle.NewTree(leaves)
	for size := uint64(1); size <= propMax; size++ {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			t.Parallel()
			exact := merkle.NewTree(leaves[:size])
			root := roots[size]
			for index := range size {
				leaf := leaves[index]
				proof, err := full.InclusionProof(index, size)
				require.NoError(t, err)
				exactProof, err := exact.InclusionProof(index, size)
				require.NoError(t, err)
				require.Equal(t, exactProof, proof, "proof for leaf %d of %d from trees of size %d and %d", index, size, propMax, size)
				require.NoError(t, merkle.VerifyInclusion(leaf, index, size, proof, root), "leaf %d of %d", index, size)

				for _, bit := range flipBits() {
					requireRejected(t, merkle.VerifyInclusion(flipBit(leaf, bit), index, size, proof, root),
						"leaf %d of %d: leaf bit %d flipped", index, size, bit)
					requireRejected(t, merkle.VerifyInclusion(leaf, index, size, proof, flipBit(root, bit)),
						"leaf %d of %d: root bit %d flipped", index, size, bit)
					for k := range proof {
						bad := cloneWith(proof, k, flipBit(proof[k], bit))
						requireRejected(t, merkle.VerifyInclusion(leaf, index, size, bad, root),
							"leaf %d of %d: proof[%d] bit %d flipped", index, size, k, bit)
					}
				}
				for desc, bad := range proofVariants(proof, root, leaf) {
					requireRejected(t, merkle.VerifyInclusion(leaf, index, size, bad, root),
						"leaf %d of %d: proof %s", index, size, desc)
				}
				// Every other index, in range or not.
				for _, other := range []uint64{size, size + 1, index + size, index + 1<<32, math.MaxUint64} {
					requireRejected(t, merkle.VerifyInclusion(leaf, other, size, proof, root),
						"leaf %d of %d claimed as index %d", index, size, other)
				}
				for other := range size {
					if other != index {
						requireRejected(t, merkle.VerifyInclusion(leaf, other, size, proof, root),
							"leaf %d of %d claimed as index %d", index, size, other)
						requireRejected(t, merkle.VerifyInclusion(leaves[other], index, size, proof, root),
							"leaf %d of %d replaced by leaf %d", index, size, other)
					}
				}
				// Every other size, each with its own genuine root: a proof
				// for one size never proves inclusion in another tree.
				requireRejected(t, merkle.VerifyInclusion(leaf, index, 0, proof, root), "size 0")
				for other := uint64(1); other <= propMax; other++ {
					if other != size {
						requireRejected(t, merkle.VerifyInclusion(leaf, index, other, proof, roots[other]),
							"leaf %d of %d claimed in tree of size %d", index, size, other)
					}
				}
				requireRejected(t, merkle.VerifyInclusion(leaf, index, math.MaxUint64, proof, root), "size MaxUint64")
			}
		})
	}
}

// TestPropertyConsistency checks, for every pair 0 <= old <= new <= propMax,
// that the proof from a larger tree equals the proof from a tree of exactly
// the new size, that it verifies against independently computed roots, and
// that every damaged variant is rejected.
func TestPropertyConsistency(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(propMax)
	roots := referenceRoots(leaves)
	full := merkle.NewTree(leaves)
	for newSize := uint64(0); newSize <= propMax; newSize++ {
		t.Run(fmt.Sprint("new=", newSize), func(t *testing.T) {
			t.Parallel()
			exact := merkle.NewTree(leaves[:newSize])
			newRoot := roots[newSize]
			for oldSize := uint64(0); oldSize <= newSize; oldSize++ {
				oldRoot := roots[oldSize]
				proof, err := full.ConsistencyProof(oldSize, newSize)
				require.NoError(t, err)
				exactProof, err := exact.ConsistencyProof(oldSize, newSize)
				require.NoError(t, err)
				require.Equal(t, exactProof, proof, "proof %d→%d from trees of size %d and %d", oldSize, newSize, propMax, newSize)
				require.NoError(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, proof), "%d→%d", oldSize, newSize)

				if oldSize == 0 || oldSize == newSize {
					requireTrivialConsistency(t, oldSize, newSize, oldRoot, newRoot, proof)
					continue
				}
				require.NotEmpty(t, proof)

				for _, bit := range flipBits() {
					requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, flipBit(oldRoot, bit), newRoot, proof),
						"%d→%d: old root bit %d flipped", oldSize, newSize, bit)
					requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, flipBit(newRoot, bit), proof),
						"%d→%d: new root bit %d flipped", oldSize, newSize, bit)
					for k := range proof {
						bad := cloneWith(proof, k, flipBit(proof[k], bit))
						requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, bad),
							"%d→%d: proof[%d] bit %d flipped", oldSize, newSize, k, bit)
					}
				}
				for desc, bad := range proofVariants(proof, oldRoot, newRoot) {
					requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, bad),
						"%d→%d: proof %s", oldSize, newSize, desc)
				}
				requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, newRoot, oldRoot, proof),
					"%d→%d: roots swapped", oldSize, newSize)
				requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, nil),
					"%d→%d: empty proof", oldSize, newSize)
				requireRejected(t, merkle.VerifyConsistency(newSize, oldSize, newRoot, oldRoot, proof),
					"%d→%d: sizes reversed", oldSize, newSize)
				// Every other old size and every other new size, each with
				// its genuine root.
				for other := uint64(0); other <= propMax; other++ {
					if other != oldSize {
						requireRejected(t, merkle.VerifyConsistency(other, newSize, roots[other], newRoot, proof),
							"%d→%d claimed as %d→%d", oldSize, newSize, other, newSize)
					}
					if other != newSize {
						requireRejected(t, merkle.VerifyConsistency(oldSize, other, oldRoot, roots[other], proof),
							"%d→%d claimed as %d→%d", oldSize, newSize, oldSize, other)
					}
				}
				requireRejected(t, merkle.VerifyConsistency(oldSize, math.MaxUint64, oldRoot, newRoot, proof), "new size MaxUint64")
			}
		})
	}
}

// requireTrivialConsistency covers the cases RFC 9162 §2.1.4.2 leaves to the
// implementation: old size 0 and old size equal to new size.
func requireTrivialConsistency(t *testing.T, oldSize, newSize uint64, oldRoot, newRoot merkle.Hash, proof []merkle.Hash) {
	t.Helper()
	require.Empty(t, proof)
	for desc, bad := range proofVariants(proof, oldRoot, newRoot) {
		requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, bad),
			"%d→%d: proof %s", oldSize, newSize, desc)
	}
	for _, bit := range flipBits() {
		requireRejected(t, merkle.VerifyConsistency(oldSize, newSize, flipBit(oldRoot, bit), newRoot, proof),
			"%d→%d: old root bit %d flipped", oldSize, newSize, bit)
		err := merkle.VerifyConsistency(oldSize, newSize, oldRoot, flipBit(newRoot, bit), proof)
		if oldSize == newSize {
			requireRejected(t, err, "%d→%d: new root bit %d flipped", oldSize, newSize, bit)
		} else {
			// Every tree extends the empty tree: nothing is claimed about
			// the new root.
			require.NoError(t, err)
		}
	}
}

// TestPropertyLargeTree samples proofs in a tree large enough to use many
// stored levels, against RootFromLeaves.
func TestPropertyLargeTree(t *testing.T) {
	t.Parallel()
	const n = 5000
	leaves := testLeaves(n)
	var tree merkle.Tree
	for _, l := range leaves {
		tree.Append(l)
	}
	require.Equal(t, merkle.RootFromLeaves(leaves), tree.Root())
	require.Equal(t, merkle.NewTree(leaves).Root(), tree.Root())

	rng := rand.New(rand.NewPCG(6962, 9162))
	rootOf := map[uint64]merkle.Hash{}
	root := func(size uint64) merkle.Hash {
		if r, ok := rootOf[size]; ok {
			return r
		}
		r := merkle.RootFromLeaves(leaves[:size])
		rootOf[size] = r
		got, err := tree.RootAt(size)
		require.NoError(t, err)
		require.Equal(t, r, got, "RootAt(%d)", size)
		return r
	}
	for range 200 {
		size := 1 + rng.Uint64N(n)
		index := rng.Uint64N(size)
		proof, err := tree.InclusionProof(index, size)
		require.NoError(t, err)
		require.NoError(t, merkle.VerifyInclusion(leaves[index], index, size, proof, root(size)))
		requireRejected(t, merkle.VerifyInclusion(leaves[index], index, size, proof, root(size-1)), "root of size-1")

		oldSize := rng.Uint64N(size + 1)
		proof, err = tree.ConsistencyProof(oldSize, size)
		require.NoError(t, err)
		require.NoError(t, merkle.VerifyConsistency(oldSize, size, root(oldSize), root(size), proof), "%d→%d", oldSize, size)
	}
}
