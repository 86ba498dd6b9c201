package merkle_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/webhookd/webhookd/audit/merkle"
)

func TestTreeOutOfRange(t *testing.T) {
	t.Parallel()
	tree := merkle.NewTree(testLeaves(10))

	_, err := tree.RootAt(11)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	require.EqualError(t, err, "merkle: out of range: root at tree size 11: tree has only 10 leaves")

	_, err = tree.InclusionProof(3, 11)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	require.EqualError(t, err, "merkle: out of range: inclusion proof for leaf 3 of tree size 11: tree has only 10 leaves")

	_, err = tree.InclusionProof(5, 5)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	require.EqualError(t, err, "merkle: out of range: inclusion proof for leaf 5 of tree size 5: index not below size")

	_, err = tree.InclusionProof(0, 0)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)

	_, err = tree.ConsistencyProof(3, 11)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	require.EqualError(t, err, "merkle: out of range: consistency proof from tree size 3 to 11: tree has only 10 leaves")

	_, err = tree.ConsistencyProof(7, 6)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	require.EqualError(t, err, "merkle: out of range: consistency proof from tree size 7 to 6: old size exceeds new size")

	for _, sizes := range [][2]uint64{{0, 0}, {0, 10}, {4, 4}, {10, 10}} {
		proof, err := tree.ConsistencyProof(sizes[0], sizes[1])
		require.NoError(t, err)
		require.Empty(t, proof)
	}
}

func TestZeroTree(t *testing.T) {
	t.Parallel()
	var tree merkle.Tree
	require.Zero(t, tree.Size())
	require.Equal(t, merkle.EmptyRoot(), tree.Root())
	root, err := tree.RootAt(0)
	require.NoError(t, err)
	require.Equal(t, merkle.EmptyRoot(), root)
	_, err = tree.InclusionProof(0, 0)
	require.ErrorIs(t, err, merkle.ErrOutOfRange)
	proof, err := tree.ConsistencyProof(0, 0)
	require.NoError(t, err)
	require.Empty(t, proof)
	require.NoError(t, merkle.VerifyConsistency(0, 0, merkle.EmptyRoot(), merkle.EmptyRoot(), nil))
}

func TestNewTreeCopiesAndKeepsAppending(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(100)
	in := append([]merkle.Hash(nil), leaves[:37]...)
	tree := merkle.NewTree(in)
	in[0] = merkle.Hash{} // must not affect the tree
	for _, l := range leaves[37:] {
		tree.Append(l)
	}
	require.Equal(t, uint64(100), tree.Size())
	require.Equal(t, merkle.RootFromLeaves(leaves), tree.Root())
}

// TestVerifyErrorMessages pins the wording that operators will read.
func TestVerifyErrorMessages(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(1000)
	tree := merkle.NewTree(leaves)
	root := tree.Root()
	proof, err := tree.InclusionProof(17, 1000)
	require.NoError(t, err)
	require.Len(t, proof, 10)

	err = merkle.VerifyInclusion(leaves[17], 17, 1000, proof[:9], root)
	require.ErrorIs(t, err, merkle.ErrVerificationFailed)
	require.EqualError(t, err, "merkle: inclusion proof for leaf 17 of tree size 1000: proof has 9 hashes, want 10")

	err = merkle.VerifyInclusion(leaves[18], 17, 1000, proof, root)
	require.ErrorIs(t, err, merkle.ErrVerificationFailed)
	require.Regexp(t, `^merkle: inclusion proof for leaf 17 of tree size 1000: computed root [0-9a-f]{8}… does not match expected `+root.String()[:8]+`…$`, err.Error())

	err = merkle.VerifyInclusion(leaves[17], 1000, 1000, proof, root)
	require.EqualError(t, err, "merkle: inclusion proof for leaf 1000 of tree size 1000: index not below size")

	oldRoot, err := tree.RootAt(300)
	require.NoError(t, err)
	cproof, err := tree.ConsistencyProof(300, 1000)
	require.NoError(t, err)
	require.NoError(t, merkle.VerifyConsistency(300, 1000, oldRoot, root, cproof))

	err = merkle.VerifyConsistency(300, 1000, oldRoot, root, cproof[1:])
	require.ErrorIs(t, err, merkle.ErrVerificationFailed)
	require.EqualError(t, err, "merkle: consistency proof from tree size 300 to 1000: proof has "+
		strconv.Itoa(len(cproof)-1)+" hashes, want "+strconv.Itoa(len(cproof)))

	err = merkle.VerifyConsistency(300, 1000, oldRoot, merkle.EmptyRoot(), cproof)
	require.ErrorIs(t, err, merkle.ErrVerificationFailed)
	require.Contains(t, err.Error(), "merkle: consistency proof from tree size 300 to 1000: computed new root ")
	require.True(t, strings.HasSuffix(err.Error(), "does not match expected e3b0c442…"), err.Error())

	err = merkle.VerifyConsistency(300, 1000, root, root, cproof)
	require.Contains(t, err.Error(), "computed old root ")

	err = merkle.VerifyConsistency(1000, 300, root, oldRoot, nil)
	require.EqualError(t, err, "merkle: consistency proof from tree size 1000 to 300: old size exceeds new size")

	err = merkle.VerifyConsistency(0, 5, root, root, nil)
	require.EqualError(t, err, "merkle: consistency proof from tree size 0 to 5: old root "+root.String()[:8]+"… is not the empty-tree root e3b0c442…")

	err = merkle.VerifyConsistency(5, 5, oldRoot, root, nil)
	require.ErrorIs(t, err, merkle.ErrVerificationFailed)
	require.Contains(t, err.Error(), "differs from new root")
}

func TestHashText(t *testing.T) {
	t.Parallel()
	h := merkle.LeafHash([]byte("x"))
	require.Len(t, h.String(), 64)

	parsed, err := merkle.ParseHash(strings.ToUpper(h.String()))
	require.NoError(t, err)
	require.Equal(t, h, parsed)

	_, err = merkle.ParseHash("abc")
	require.EqualError(t, err, "merkle: hash must be 64 hex digits, got 3 characters")
	_, err = merkle.ParseHash(strings.Repeat("zz", 32))
	require.ErrorContains(t, err, "merkle: hash is not hex")

	type doc struct {
		Root  merkle.Hash   `json:"root"`
		Proof []merkle.Hash `json:"proof"`
	}
	in := doc{Root: h, Proof: []merkle.Hash{merkle.EmptyRoot()}}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"root":"`+h.String()+`","proof":["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}`, string(b))
	var out doc
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)
}

// TestConcurrentUse appends while other goroutines read; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(2000)
	var tree merkle.Tree
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				size := tree.Size()
				if size == 0 {
					continue
				}
				root, err := tree.RootAt(size)
				require.NoError(t, err)
				index := size / 2
				proof, err := tree.InclusionProof(index, size)
				require.NoError(t, err)
				require.NoError(t, merkle.VerifyInclusion(leaves[index], index, size, proof, root))
			}
		})
	}
	for _, l := range leaves {
		tree.Append(l)
	}
	close(done)
	wg.Wait()
	require.Equal(t, merkle.RootFromLeaves(leaves), tree.Root())
}

// TestEmptyProofsEncodeAsEmptyLists: an empty proof is served over HTTP as
// JSON, where a nil slice would read "null" instead of "[]".
func TestEmptyProofsEncodeAsEmptyLists(t *testing.T) {
	t.Parallel()
	tree := merkle.NewTree(testLeaves(8))
	one := merkle.NewTree(testLeaves(1))
	proofs := map[string]func() ([]merkle.Hash, error){
		"inclusion in a tree of one":    func() ([]merkle.Hash, error) { return one.InclusionProof(0, 1) },
		"inclusion at size 1":           func() ([]merkle.Hash, error) { return tree.InclusionProof(0, 1) },
		"consistency from 0":            func() ([]merkle.Hash, error) { return tree.ConsistencyProof(0, 8) },
		"consistency to the same size":  func() ([]merkle.Hash, error) { return tree.ConsistencyProof(5, 5) },
		"consistency of the empty tree": func() ([]merkle.Hash, error) { return tree.ConsistencyProof(0, 0) },
	}
	for name, get := range proofs {
		proof, err := get()
		require.NoError(t, err, name)
		b, err := json.Marshal(proof)
		require.NoError(t, err, name)
		require.Equal(t, "[]", string(b), name)
	}
}
