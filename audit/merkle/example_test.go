package merkle_test

import (
	"fmt"

	"github.com/webhookd/webhookd/audit/merkle"
)

// A sealer appends leaf hashes and publishes (size, root) checkpoints; an
// offline verifier checks inclusion and consistency with proofs alone.
func Example() {
	var tree merkle.Tree
	for _, entry := range []string{"entry 0", "entry 1", "entry 2"} {
		tree.Append(merkle.LeafHash([]byte(entry)))
	}
	oldSize, oldRoot := tree.Size(), tree.Root()

	index := tree.Append(merkle.LeafHash([]byte("entry 3")))
	newSize, newRoot := tree.Size(), tree.Root()
	fmt.Println("checkpoint", newSize, newRoot)

	// Offline: entry 3 is in the checkpointed tree ...
	proof, _ := tree.InclusionProof(index, newSize)
	err := merkle.VerifyInclusion(merkle.LeafHash([]byte("entry 3")), index, newSize, proof, newRoot)
	fmt.Println("entry 3 included:", err == nil)

	// ... a tampered entry is not ...
	err = merkle.VerifyInclusion(merkle.LeafHash([]byte("entry 3!")), index, newSize, proof, newRoot)
	fmt.Println(err)

	// ... and the new checkpoint extends the old one.
	cproof, _ := tree.ConsistencyProof(oldSize, newSize)
	err = merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, cproof)
	fmt.Println("consistent:", err == nil)
	// Output:
	// checkpoint 4 9799f307517ef517c2205df9b67762bf34756b20099fb7dfcce76bcebd273b2e
	// entry 3 included: true
	// merkle: inclusion proof for leaf 3 of tree size 4: computed root 797a0bb9… does not match expected 9799f307…
	// consistent: true
}
