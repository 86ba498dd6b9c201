package seal

import "github.com/webhookd/webhookd/audit/merkle"

// Proof is the RFC 6962 inclusion proof of one ledger entry: its leaf hash
// and audit path, leaf upwards, in the tree of size TreeSize. The ledger's
// proof endpoint answers with it and an export bundle holds one per entry
// (a line of proofs.jsonl, beside the entry on the same line of
// entries.jsonl).
type Proof struct {
	LedgerIndex uint64        `json:"ledger_index"`
	LeafHash    merkle.Hash   `json:"leaf_hash"`
	TreeSize    uint64        `json:"tree_size"`
	Path        []merkle.Hash `json:"path"`
}
