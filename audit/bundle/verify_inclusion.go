package bundle

import (
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/webhookd/webhookd/audit/merkle"
)

// pathNode is one node of a verified audit path: the subtree over leaves
// [start, start+n) and its hash.
type pathNode struct {
	start, n uint64
	hash     merkle.Hash
}

// pathCache verifies RFC 6962 inclusion proofs and remembers the nodes of
// the last path it verified up to the root, by depth. A later proof for
// a nearby leaf stops as soon as it computes a node of that path: equal
// hashes prove inclusion (the rest of the way was verified), a different
// hash disproves it. For entries in index order this costs about two
// hashes per entry instead of log2(size).
type pathCache struct {
	size  uint64
	root  merkle.Hash
	nodes [64]pathNode
	depth int // nodes[:depth] are valid, top-down (nodes[0] is the root's child)
}

func newPathCache(size uint64, root merkle.Hash) *pathCache {
	return &pathCache{size: size, root: root}
}

// verify checks that path proves leaf at index in the cache's tree. The
// hashes of path above the point where it joins an already verified path
// are not needed and not looked at.
func (c *pathCache) verify(leaf merkle.Hash, index uint64, path []merkle.Hash) error {
	if index >= c.size {
		return fmt.Errorf("ledger index %d is not below the checkpoint's tree size %d", index, c.size)
	}
	// Top-down decomposition: ranges[d] is the subtree at depth d+1 that
	// holds the leaf; left[d] says whether it is its parent's left child.
	var ranges [64]pathNode
	var left [64]bool
	depth := 0
	start, n := uint64(0), c.size
	for n > 1 {
		k := uint64(1)
		for 2*k < n {
			k *= 2
		}
		if index-start < k {
			ranges[depth] = pathNode{start: start, n: k}
			left[depth] = true
			n = k
		} else {
			ranges[depth] = pathNode{start: start + k, n: n - k}
			start, n = start+k, n-k
		}
		depth++
	}
	if len(path) != depth {
		return fmt.Errorf("inclusion proof for ledger index %d has %d hashes, want %d", index, len(path), depth)
	}
	h := leaf
	for d := depth - 1; d >= 0; d-- {
		ranges[d].hash = h
		if d < c.depth && c.nodes[d].start == ranges[d].start && c.nodes[d].n == ranges[d].n {
			if c.nodes[d].hash != h {
				return fmt.Errorf("inclusion proof for ledger index %d does not lead to the checkpoint's root", index)
			}
			copy(c.nodes[d+1:depth], ranges[d+1:depth])
			c.depth = depth
			return nil
		}
		p := path[depth-1-d]
		if left[d] {
			h = nodeHash(h, p)
		} else {
			h = nodeHash(p, h)
		}
	}
	if h != c.root {
		return fmt.Errorf("inclusion proof for ledger index %d does not lead to the checkpoint's root", index)
	}
	copy(c.nodes[:depth], ranges[:depth])
	c.depth = depth
	return nil
}

// nodeHash is merkle.NodeHash, SHA-256(0x01 || left || right), without an
// allocation.
func nodeHash(left, right merkle.Hash) merkle.Hash {
	var b [1 + 2*merkle.HashSize]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], left[:])
	copy(b[1+merkle.HashSize:], right[:])
	return sha256.Sum256(b[:])
}
