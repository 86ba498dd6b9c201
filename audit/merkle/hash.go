package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size in bytes of every hash in this package (SHA-256).
const HashSize = sha256.Size

// hasher is the RFC 6962 SHA-256 hasher every hash of this package comes from.
var hasher = rfc6962.DefaultHasher

// ranges builds the library's compact ranges with that hasher.
var ranges = &compact.RangeFactory{Hash: hasher.HashChildren}

// Hash is a SHA-256 digest: a leaf hash, an interior node hash or a tree root.
//
// Its text form (String, MarshalText) is 64 lowercase hex digits, so a Hash
// is encoded as a hex string by encoding/json and similar packages.
type Hash [HashSize]byte

// String returns h as 64 lowercase hex digits.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// MarshalText implements encoding.TextMarshaler: 64 lowercase hex digits.
func (h Hash) MarshalText() ([]byte, error) {
	out := make([]byte, 2*HashSize)
	hex.Encode(out, h[:])
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts exactly 64
// hex digits in either case.
func (h *Hash) UnmarshalText(text []byte) error {
	if len(text) != 2*HashSize {
		return fmt.Errorf("merkle: hash must be %d hex digits, got %d characters", 2*HashSize, len(text))
	}
	var out Hash
	if _, err := hex.Decode(out[:], text); err != nil {
		return fmt.Errorf("merkle: hash is not hex: %w", err)
	}
	*h = out
	return nil
}

// ParseHash parses a hash written as exactly 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	err := h.UnmarshalText([]byte(s))
	return h, err
}

// short abbreviates h for error messages.
func short(h []byte) string {
	return hex.EncodeToString(h[:min(4, len(h))]) + "…"
}

// toHash converts a hash returned by the library. Every hash it returns has
// HashSize bytes, since it comes from SHA-256.
func toHash(b []byte) Hash {
	return Hash(b)
}

// toBytes converts hashes to the library's form; the slices share hs's memory.
func toBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// LeafHash returns the RFC 6962 leaf hash of entry: SHA-256(0x00 || entry).
func LeafHash(entry []byte) Hash {
	return toHash(hasher.HashLeaf(entry))
}

// NodeHash returns the RFC 6962 interior node hash of two child hashes:
// SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	return toHash(hasher.HashChildren(left[:], right[:]))
}

// EmptyRoot returns the root of the empty tree, SHA-256 of the empty string
// (e3b0c442…b855), as RFC 6962 §2.1 defines it.
func EmptyRoot() Hash {
	return toHash(hasher.EmptyRoot())
}

// RootFromLeaves computes the Merkle Tree Hash of the given leaf hashes by the
// plain recursive definition of RFC 6962 §2.1. It shares nothing with Tree
// and Frontier (the library's compact ranges and proof builder) but NodeHash,
// and exists as an independent second computation of a root, e.g. for an
// offline verifier that holds every entry. It returns EmptyRoot() for no
// leaves. It costs O(n) time and O(log n) stack.
func RootFromLeaves(leaves []Hash) Hash {
	switch n := len(leaves); n {
	case 0:
		return EmptyRoot()
	case 1:
		return leaves[0]
	default:
		k := 1 // the largest power of two smaller than n
		for 2*k < n {
			k *= 2
		}
		return NodeHash(RootFromLeaves(leaves[:k]), RootFromLeaves(leaves[k:]))
	}
}
