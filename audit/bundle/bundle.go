package bundle

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// Format names version 1 of the export bundle layout (manifest.json's
// "format").
const Format = "webhookd-export-v1"

// Files of a bundle directory.
const (
	ManifestFile   = "manifest.json"
	CheckpointFile = "checkpoint.json"
	PublicKeyFile  = "public_key.pem"
	EntriesFile    = "entries.jsonl"
	EntriesCSVFile = "entries.csv"
	ProofsFile     = "proofs.jsonl"
	// ManifestSignatureFile is present when the export was signed (see
	// ManifestSignature).
	ManifestSignatureFile = "manifest.sig"
	// CheckpointNoteFile is the checkpoint as a C2SP signed note with the
	// witnesses' cosignatures webhookd stored for it (see seal.Cosigned);
	// present when the checkpoint is a note.
	CheckpointNoteFile = "checkpoint.note"
)

// manifestTag starts the message a manifest signature covers.
const manifestTag = "webhookd-manifest-v1"

// ManifestSignature is manifest.sig: an Ed25519 signature, by the key that
// signed the bundle's checkpoint, over "webhookd-manifest-v1\n" followed by
// the bytes of manifest.json. It authenticates what the manifest says of
// the export (actor, range, filters, completeness, counts, file hashes),
// which the checkpoint and the proofs do not cover.
type ManifestSignature struct {
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"`
}

func manifestMessage(manifest []byte) []byte {
	return append([]byte(manifestTag+"\n"), manifest...)
}

// SignManifest signs the bytes of a manifest.json with key.
func SignManifest(key ed25519.PrivateKey, manifest []byte) ManifestSignature {
	return ManifestSignature{KeyID: seal.KeyID(key.Public().(ed25519.PublicKey)), Signature: ed25519.Sign(key, manifestMessage(manifest))}
}

// Verify checks s over the bytes of a manifest.json with pub.
func (s ManifestSignature) Verify(pub ed25519.PublicKey, manifest []byte) error {
	if s.KeyID != seal.KeyID(pub) {
		return fmt.Errorf("%s is signed by key %s, not by the checkpoint's key %s", ManifestSignatureFile, s.KeyID, seal.KeyID(pub))
	}
	if !ed25519.Verify(pub, manifestMessage(manifest), s.Signature) {
		return fmt.Errorf("%s: the signature does not verify over %s with key %s: the manifest was changed after the export", ManifestSignatureFile, ManifestFile, s.KeyID)
	}
	return nil
}

// Selection chooses sealed ledger entries.
type Selection struct {
	// Below excludes indexes at or above it (a checkpoint's tree size);
	// 0 means no limit.
	Below uint64
	// With HasIndexRange, only indexes FirstIndex..LastIndex (inclusive).
	FirstIndex, LastIndex uint64
	HasIndexRange         bool
	// ReceivedFrom (inclusive) and ReceivedTo (exclusive) bound received_at
	// when not zero.
	ReceivedFrom, ReceivedTo time.Time
	// User keeps entries whose subject is the user or whose raw body
	// mentions the user id (sessions, memberships…).
	User string
	// Types keeps entries of these event types when not empty.
	Types []string
}

// SealedRow is one sealed ledger entry as the database holds it.
type SealedRow struct {
	Index    uint64
	LeafHash merkle.Hash
	Entry    domain.LedgerEntry
}

// FileDigest is a bundle file's size and SHA-256 (hex).
type FileDigest struct {
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Manifest describes a bundle (manifest.json).
type Manifest struct {
	Format    string    `json:"format"`
	ExportID  string    `json:"export_id"`
	CreatedAt time.Time `json:"created_at"`
	Actor     string    `json:"actor"`
	// From and To are the received_at range asked for (RFC 3339, "" when
	// open).
	From string `json:"from"`
	To   string `json:"to"`
	// User and Types are the filters asked for.
	User  string   `json:"user,omitempty"`
	Types []string `json:"types,omitempty"`
	// Redacted says personal data in payloads was replaced.
	Redacted bool `json:"redacted"`
	// Complete says the bundle holds every entry with a ledger index from
	// FirstIndex to LastIndex (no filter but time was applied): the
	// verifier then reports any missing index.
	Complete bool `json:"complete"`
	// Entries and RedactedEntries count the lines of entries.jsonl.
	Entries         int `json:"entries"`
	RedactedEntries int `json:"redacted_entries"`
	// FirstIndex and LastIndex are the lowest and highest ledger index
	// exported (absent when no entry).
	FirstIndex *uint64 `json:"first_index,omitempty"`
	LastIndex  *uint64 `json:"last_index,omitempty"`
	// TreeSize is the size of the checkpoint the proofs are against.
	TreeSize uint64 `json:"tree_size"`
	// Files holds the SHA-256 of every other file of the bundle.
	Files map[string]FileDigest `json:"files"`
}

// exportEventData is the data of a webhookd.export.created ledger event.
type exportEventData struct {
	ID       string   `json:"id"`
	Object   string   `json:"object"`
	Actor    string   `json:"actor"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	User     string   `json:"user,omitempty"`
	Types    []string `json:"types,omitempty"`
	Redacted bool     `json:"redacted"`
	Count    int      `json:"count"`
	TreeSize uint64   `json:"tree_size"`
}

// EventExportCreated is the type of the ledger event that records an
// export.
const EventExportCreated = "webhookd.export.created"

// ExportEvent returns the ledger entry that records the export m describes:
// source webhookd, svix_id whd_<export id>, type webhookd.export.created,
// a Clerk-shaped envelope whose data is {id, actor, range, filters,
// count}.
func ExportEvent(m Manifest, at time.Time) (domain.LedgerEntry, error) {
	at = at.UTC().Truncate(time.Millisecond)
	body, err := json.Marshal(map[string]any{
		"object":      "event",
		"type":        EventExportCreated,
		"instance_id": domain.SourceWebhookd,
		"timestamp":   at.UnixMilli(),
		"data": exportEventData{ID: m.ExportID, Object: "export", Actor: m.Actor, From: m.From, To: m.To,
			User: m.User, Types: m.Types, Redacted: m.Redacted, Count: m.Entries, TreeSize: m.TreeSize},
	})
	if err != nil {
		return domain.LedgerEntry{}, err
	}
	return domain.LedgerEntry{
		SvixID:        "whd_" + m.ExportID,
		Source:        domain.SourceWebhookd,
		EventType:     EventExportCreated,
		SubjectID:     m.ExportID,
		InstanceID:    domain.SourceWebhookd,
		EventTime:     at,
		TimestampUnit: domain.UnitMilliseconds,
		ReceivedAt:    at,
		Payload:       body,
	}, nil
}
