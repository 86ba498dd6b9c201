// Package merkle is webhookd's adapter over github.com/transparency-dev/merkle,
// the RFC 6962 Merkle tree that makes the append-only audit ledger
// tamper-evident, in the manner of Certificate Transparency.
//
// The algorithms are the library's: hashing is rfc6962.DefaultHasher, the
// tree's right edge is a compact.Range, proofs are built from the node lists
// of proof.Inclusion and proof.Consistency and checked with
// proof.RootFromInclusionProof and proof.VerifyConsistency. This package
// exists so that the rest of webhookd has one place for the types it uses: a
// fixed-size, comparable Hash with a hex text form (instead of the library's
// []byte), a Tree that keeps the nodes the library asks for, and errors
// that say what failed and match ErrVerificationFailed or ErrOutOfRange.
//
// # Contract
//
// Hashing follows RFC 6962 §2.1 (unchanged in RFC 9162 §2.1.1) with SHA-256:
//
//	LeafHash(entry)   = SHA-256(0x00 || entry)
//	NodeHash(l, r)    = SHA-256(0x01 || l || r)
//	MTH({})           = SHA-256("")                          (EmptyRoot)
//	MTH({d0})         = LeafHash(d0)
//	MTH(D[n]), n > 1  = NodeHash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of two < n
//
// The 0x00/0x01 prefixes separate leaves from interior nodes, so a leaf can
// never be passed off as a subtree or vice versa.
//
// Apart from LeafHash, everything in this package works on leaf hashes, not
// on raw entries: the caller hashes each canonical ledger entry once with
// LeafHash and from then on deals in Hash values.
//
// Inclusion proofs (audit paths) are the RFC 6962 §2.1.1 PATH(m, D[n]) and
// consistency proofs the RFC 6962 §2.1.2 PROOF(m, D[n]); both are ordered from
// the leaf (or the old tree) upwards, exactly as CT logs serve them. They are
// checked (RFC 9162 §2.1.3.2 and §2.1.4.2) with nothing but the proof, the
// sizes and the roots: an export bundle can be verified offline without
// rebuilding any tree. VerifyConsistency is stricter than the library where
// RFC 9162 leaves the choice open: from size 0 it requires the empty-tree
// root. RootFromLeaves is a deliberately naive, recursive transcription of
// the MTH definition above, sharing nothing with the library's compact ranges
// or proofs but NodeHash, kept as an independent second computation of a
// root.
//
// A root does not encode the size of its tree. A verifier must take a size
// and its root together, as a pair, from a signed checkpoint; a proof only
// means something relative to such a pair.
//
// Every verification failure returned by VerifyInclusion and VerifyConsistency
// matches ErrVerificationFailed under errors.Is, and its message says what
// failed (which leaf or sizes, which hash, how many proof hashes were expected).
// Requests to a Tree for sizes or indices beyond its contents match ErrOutOfRange.
//
// # Tree
//
// Tree is an append-only, in-memory tree that answers Root, RootAt,
// InclusionProof and ConsistencyProof for its current size and for every
// earlier size. It keeps every leaf hash (32 bytes a leaf) and the hashes of
// the complete subtrees of height 4 and above (a further 4 bytes a leaf on
// average), as the library's compact range computes them on Append; the few
// subtrees of height 1 to 3 that a request needs are recomputed from the
// leaves (at most 7 hashes each). So 1,000,000 leaves take about 36 MB,
// Append costs amortised about one NodeHash, and Root, RootAt and both
// proofs cost O(log n).
//
// # Persisting and restoring
//
// The package has no compact-range ("frontier") serialisation on purpose. The
// sealer already persists the leaf hash of every ledger entry, and NewTree
// rebuilds a full, proof-capable Tree from those leaf hashes with about one
// hash per leaf (see BenchmarkNewTree1M). A frontier alone could compute new
// roots but could never serve proofs for existing leaves, so it would have to
// be paired with the leaf hashes anyway. To restore: load the leaf hashes in
// ledger-index order, call NewTree, and compare Root() with the latest signed
// checkpoint before appending anything.
package merkle
