package seal

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/domain"
)

// CanonicalVersion tags version 1 of the canonical entry encoding. It is the
// first field of every encoding, so a later version can never produce the
// same bytes (and the same leaf hash) as this one.
const CanonicalVersion = "webhookd-ledger-entry-v1"

// TimeLayout is how every time in the canonical encoding, in bundles and in
// signed checkpoints is written: RFC 3339 in UTC with exactly six fractional
// digits (PostgreSQL keeps microseconds), e.g. 2026-11-27T10:00:00.123456Z.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime writes t in TimeLayout; the zero time is "" (a fact that is
// absent, such as the svix timestamp of webhookd's own events).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Microsecond).Format(TimeLayout)
}

// Entry is one sealed ledger entry as a bundle carries it (one line of
// entries.jsonl) and as the canonical encoding reads it. Times are strings
// in TimeLayout so that an entry is hashed exactly as written, with no
// parsing in between.
type Entry struct {
	// LedgerIndex is the entry's position in the Merkle tree (gapless from 0).
	LedgerIndex uint64 `json:"ledger_index"`
	// Offset is the row's offset in ledger_events (unique, not gapless).
	Offset int64 `json:"offset"`
	// LeafHash is merkle.LeafHash(CanonicalEntry(entry)) as sealed.
	LeafHash      merkle.Hash `json:"leaf_hash"`
	SvixID        string      `json:"svix_id"`
	Source        string      `json:"source"`
	SvixTimestamp string      `json:"svix_timestamp"`
	Signature     string      `json:"signature"`
	EventType     string      `json:"event_type"`
	SubjectID     string      `json:"subject_id"`
	InstanceID    string      `json:"instance_id"`
	EventTime     string      `json:"event_time"`
	TimestampUnit string      `json:"timestamp_unit"`
	ReceivedAt    string      `json:"received_at"`
	SourceIP      string      `json:"source_ip"`
	// Payload is the raw body, byte for byte (base64 in JSON). It is absent
	// from a redacted entry.
	Payload []byte `json:"payload,omitempty"`
	// Redacted marks an entry whose payload was replaced by RedactedPayload:
	// its leaf hash cannot be recomputed, only its inclusion checked.
	Redacted        bool            `json:"redacted,omitempty"`
	RedactedPayload json.RawMessage `json:"redacted_payload,omitempty"`
}

// EntryFromLedger converts a ledger entry read from the database, without
// its index or leaf hash.
func EntryFromLedger(e domain.LedgerEntry) Entry {
	return Entry{
		Offset:        e.Offset,
		SvixID:        e.SvixID,
		Source:        e.Source,
		SvixTimestamp: FormatTime(e.SvixTimestamp),
		Signature:     e.Signature,
		EventType:     e.EventType,
		SubjectID:     e.SubjectID,
		InstanceID:    e.InstanceID,
		EventTime:     FormatTime(e.EventTime),
		TimestampUnit: e.TimestampUnit,
		ReceivedAt:    FormatTime(e.ReceivedAt),
		SourceIP:      e.SourceIP,
		Payload:       e.Payload,
	}
}

// CanonicalEntry returns the canonical encoding of e (version 1), the bytes
// whose RFC 6962 leaf hash seals the entry. It is the concatenation of 13
// fields, each written as its length in bytes (4-byte big-endian unsigned)
// followed by its bytes:
//
//	 0 CanonicalVersion ("webhookd-ledger-entry-v1")
//	 1 svix_id
//	 2 source          ("clerk", "clerk-api" or "webhookd")
//	 3 svix_timestamp  (TimeLayout, "" when absent)
//	 4 signature       (the svix-signature header as received, "" when absent)
//	 5 event_type
//	 6 subject_id
//	 7 instance_id
//	 8 event_time      (TimeLayout)
//	 9 timestamp_unit  ("ms" or "s")
//	10 received_at     (TimeLayout)
//	11 source_ip       (PostgreSQL's host(source_ip) text, "" when absent)
//	12 payload         (the raw request body, byte for byte)
//
// Text fields are UTF-8 as stored. The ledger offset and index are not part
// of the encoding: the index is the leaf's position in the tree, which the
// inclusion proof binds.
func CanonicalEntry(e *Entry) []byte {
	return AppendCanonical(make([]byte, 0, canonicalSize(e)), e)
}

func canonicalSize(e *Entry) int {
	return 13*4 + len(CanonicalVersion) + len(e.SvixID) + len(e.Source) + len(e.SvixTimestamp) +
		len(e.Signature) + len(e.EventType) + len(e.SubjectID) + len(e.InstanceID) + len(e.EventTime) +
		len(e.TimestampUnit) + len(e.ReceivedAt) + len(e.SourceIP) + len(e.Payload)
}

// AppendCanonical appends CanonicalEntry(e) to dst.
func AppendCanonical(dst []byte, e *Entry) []byte {
	for _, f := range [...]string{CanonicalVersion, e.SvixID, e.Source, e.SvixTimestamp, e.Signature,
		e.EventType, e.SubjectID, e.InstanceID, e.EventTime, e.TimestampUnit, e.ReceivedAt, e.SourceIP} {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Payload)))
	return append(dst, e.Payload...)
}

// ComputeLeafHash returns merkle.LeafHash(CanonicalEntry(e)).
func ComputeLeafHash(e *Entry) merkle.Hash {
	return merkle.LeafHash(CanonicalEntry(e))
}

// LeafHasher computes ComputeLeafHash with a buffer it reuses, for
// hashing many entries on one goroutine without allocating for each. Its
// zero value is ready; it is not safe for concurrent use.
type LeafHasher struct{ buf []byte }

// Sum returns ComputeLeafHash(e): SHA-256(0x00 || CanonicalEntry(e)).
func (h *LeafHasher) Sum(e *Entry) merkle.Hash {
	h.buf = AppendCanonical(append(h.buf[:0], rfc6962.RFC6962LeafHashPrefix), e)
	return sha256.Sum256(h.buf)
}
