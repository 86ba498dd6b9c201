package merkle_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/webhookd/webhookd/audit/merkle"
)

// The frontier's root equals the RFC 6962 definition (RootFromLeaves) and
// Tree's at every size.
func TestFrontierRootsMatchTheDefinition(t *testing.T) {
	t.Parallel()
	leaves := testLeaves(1100)
	roots := referenceRoots(leaves)
	var f merkle.Frontier
	var tree merkle.Tree
	require.Equal(t, merkle.EmptyRoot(), f.Root())
	for i, l := range leaves {
		require.EqualValues(t, i, f.Append(l))
		tree.Append(l)
		require.EqualValues(t, i+1, f.Size())
		require.Equal(t, roots[i+1], f.Root(), "size %d", i+1)
		require.Equal(t, tree.Root(), f.Root(), "size %d", i+1)
	}
}

func TestFrontierRootsAtRandomLargeSizes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	for range 5 {
		n := 1<<14 + rng.IntN(1<<14)
		leaves := testLeaves(n)
		var f merkle.Frontier
		for _, l := range leaves {
			f.Append(l)
		}
		require.Equal(t, merkle.RootFromLeaves(leaves), f.Root(), "size %d", n)
	}
}
