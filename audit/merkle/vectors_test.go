package merkle_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/webhookd/webhookd/audit/merkle"
)

// Reference data for the RFC 6962 tree over the eight leaf inputs that the
// Certificate Transparency implementations share. Source:
// github.com/transparency-dev/merkle, testonly/constants.go (LeafInputs,
// NodeHashes, RootHashes) and proof/verify_test.go (inclusionProofs,
// consistencyProofs, roots); the same data is in
// github.com/google/certificate-transparency-go merkletree tests. Their
// inclusion vectors number leaves from 1; below they are converted to the
// 0-based indices this package uses.

var vectorLeafInputs = []string{
	"",
	"00",
	"10",
	"2021",
	"3031",
	"40414243",
	"5051525354555657",
	"606162636465666768696a6b6c6d6e6f",
}

// vectorNodes[h][i] is the hash of the complete subtree of height h covering
// leaves [i<<h, (i+1)<<h).
var vectorNodes = [][]string{{
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
	"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
}, {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
}, {
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
}, {
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}}

// vectorRoots[n] is the root of the tree of the first n leaves.
var vectorRoots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

var vectorInclusion = []struct {
	index, size uint64
	proof       []string
}{
	{0, 1, nil},
	{0, 8, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}},
	{5, 8, []string{
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}},
	{2, 3, []string{
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	}},
	{1, 5, []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	}},
}

var vectorConsistency = []struct {
	oldSize, newSize uint64
	proof            []string
}{
	{1, 1, nil},
	{1, 8, []string{
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
	}},
	{6, 8, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}},
	{2, 5, []string{
		"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	}},
	{6, 7, []string{
		"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	}},
}

func mustHash(t testing.TB, s string) merkle.Hash {
	t.Helper()
	h, err := merkle.ParseHash(s)
	require.NoError(t, err)
	return h
}

func mustHashes(t testing.TB, ss []string) []merkle.Hash {
	t.Helper()
	out := []merkle.Hash{}
	for _, s := range ss {
		out = append(out, mustHash(t, s))
	}
	return out
}

func vectorLeaves(t testing.TB) []merkle.Hash {
	t.Helper()
	var leaves []merkle.Hash
	for _, in := range vectorLeafInputs {
		entry, err := hex.DecodeString(in)
		require.NoError(t, err)
		leaves = append(leaves, merkle.LeafHash(entry))
	}
	return leaves
}

func TestVectorLeafAndNodeHashes(t *testing.T) {
	t.Parallel()
	leaves := vectorLeaves(t)
	require.Equal(t, mustHashes(t, vectorNodes[0]), leaves, "leaf hashes")

	level := leaves
	for h := 1; h < len(vectorNodes); h++ {
		var next []merkle.Hash
		for i := 0; i < len(level); i += 2 {
			next = append(next, merkle.NodeHash(level[i], level[i+1]))
		}
		require.Equal(t, mustHashes(t, vectorNodes[h]), next, "node hashes at height %d", h)
		level = next
	}
}

func TestVectorEmptyRoot(t *testing.T) {
	t.Parallel()
	require.Equal(t, mustHash(t, vectorRoots[0]), merkle.EmptyRoot())
	require.Equal(t, merkle.EmptyRoot(), merkle.RootFromLeaves(nil))
	var tree merkle.Tree
	require.Equal(t, merkle.EmptyRoot(), tree.Root())
	require.Equal(t, merkle.EmptyRoot(), merkle.NewTree(nil).Root())
}

func TestVectorRoots(t *testing.T) {
	t.Parallel()
	leaves := vectorLeaves(t)
	full := merkle.NewTree(leaves)
	var grown merkle.Tree
	for n := 0; n <= len(leaves); n++ {
		want := mustHash(t, vectorRoots[n])
		if n > 0 {
			require.Equal(t, uint64(n-1), grown.Append(leaves[n-1]))
		}
		require.Equal(t, want, grown.Root(), "Root after %d appends", n)
		require.Equal(t, want, merkle.RootFromLeaves(leaves[:n]), "RootFromLeaves(%d)", n)
		require.Equal(t, want, merkle.NewTree(leaves[:n]).Root(), "NewTree(%d).Root", n)
		got, err := full.RootAt(uint64(n))
		require.NoError(t, err)
		require.Equal(t, want, got, "RootAt(%d)", n)
	}
}

func TestVectorInclusionProofs(t *testing.T) {
	t.Parallel()
	leaves := vectorLeaves(t)
	tree := merkle.NewTree(leaves)
	for _, v := range vectorInclusion {
		want := mustHashes(t, v.proof)
		got, err := tree.InclusionProof(v.index, v.size)
		require.NoError(t, err)
		require.Equal(t, want, got, "inclusion proof for leaf %d of %d", v.index, v.size)

		root := mustHash(t, vectorRoots[v.size])
		require.NoError(t, merkle.VerifyInclusion(leaves[v.index], v.index, v.size, want, root))
	}
}

func TestVectorConsistencyProofs(t *testing.T) {
	t.Parallel()
	leaves := vectorLeaves(t)
	tree := merkle.NewTree(leaves)
	for _, v := range vectorConsistency {
		want := mustHashes(t, v.proof)
		got, err := tree.ConsistencyProof(v.oldSize, v.newSize)
		require.NoError(t, err)
		require.Equal(t, want, got, "consistency proof from %d to %d", v.oldSize, v.newSize)

		oldRoot, newRoot := mustHash(t, vectorRoots[v.oldSize]), mustHash(t, vectorRoots[v.newSize])
		require.NoError(t, merkle.VerifyConsistency(v.oldSize, v.newSize, oldRoot, newRoot, want))
	}
}
