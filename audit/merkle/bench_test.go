package merkle_test

import (
	"testing"

	"github.com/webhookd/webhookd/audit/merkle"
)

const benchLeaves = 1_000_000

// BenchmarkAppendRoot1M appends one million leaf hashes to an empty tree and
// takes its root; one op is the whole million.
func BenchmarkAppendRoot1M(b *testing.B) {
	leaves := testLeaves(benchLeaves)
	b.ReportAllocs()
	for b.Loop() {
		var tree merkle.Tree
		for _, l := range leaves {
			tree.Append(l)
		}
		_ = tree.Root()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchLeaves, "ns/leaf")
}

// BenchmarkNewTree1M rebuilds a proof-capable tree from one million persisted
// leaf hashes, as a sealer does at start-up.
func BenchmarkNewTree1M(b *testing.B) {
	leaves := testLeaves(benchLeaves)
	b.ReportAllocs()
	for b.Loop() {
		_ = merkle.NewTree(leaves).Root()
	}
}

// BenchmarkRoot measures Root on a tree of 2^20-1 leaves, the worst case for
// its size: the root folds a complete subtree of every height 0..19.
func BenchmarkRoot(b *testing.B) {
	tree := merkle.NewTree(testLeaves(1<<20 - 1))
	for b.Loop() {
		_ = tree.Root()
	}
}

// BenchmarkInclusionProof measures producing a proof in a 1M-leaf tree.
func BenchmarkInclusionProof(b *testing.B) {
	tree := merkle.NewTree(testLeaves(benchLeaves))
	for b.Loop() {
		if _, err := tree.InclusionProof(123_457, benchLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyInclusion verifies one inclusion proof in a 1M-leaf tree
// (20 proof hashes).
func BenchmarkVerifyInclusion(b *testing.B) {
	leaves := testLeaves(benchLeaves)
	tree := merkle.NewTree(leaves)
	const index = 123_457
	proof, err := tree.InclusionProof(index, benchLeaves)
	if err != nil {
		b.Fatal(err)
	}
	root := tree.Root()
	b.ReportAllocs()
	for b.Loop() {
		if err := merkle.VerifyInclusion(leaves[index], index, benchLeaves, proof, root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyConsistency verifies a consistency proof from 300,001 to
// 1,000,000 leaves.
func BenchmarkVerifyConsistency(b *testing.B) {
	tree := merkle.NewTree(testLeaves(benchLeaves))
	const oldSize = 300_001
	proof, err := tree.ConsistencyProof(oldSize, benchLeaves)
	if err != nil {
		b.Fatal(err)
	}
	oldRoot, err := tree.RootAt(oldSize)
	if err != nil {
		b.Fatal(err)
	}
	newRoot := tree.Root()
	b.ReportAllocs()
	for b.Loop() {
		if err := merkle.VerifyConsistency(oldSize, benchLeaves, oldRoot, newRoot, proof); err != nil {
			b.Fatal(err)
		}
	}
}
