package seal

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/webhookd/webhookd/domain"
)

// Recent remembers the Clerk deliveries this process verified before it
// appended them: their svix signature checked against a configured secret,
// their envelope read. An OriginVerifier given it (WithRecent) accepts the
// stored row of such a delivery without computing the HMAC and reading the
// envelope again when the row holds exactly what was verified: the same
// svix id, timestamp and signature, a payload with the same SHA-256, the
// same facts. That is the verdict the full check would give (the signature
// covers the id, timestamp and payload it was verified with, and the facts
// were read from that payload), for about a tenth of its CPU; a row that
// differs in anything, changed after it was appended or written by another
// hand, gets the full check, and a process that did not receive the
// delivery (another replica, after a restart) has no record of it.
//
// It keeps the last Capacity deliveries (a few seconds at a high rate:
// the projections read an entry milliseconds after its append). It is safe
// for concurrent use.
type Recent struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]struct{}
	ring [][sha256.Size]byte
	next int
}

// DefaultRecentCapacity is NewRecent's capacity when given 0: about
// 700 kB of records (a record is one SHA-256, not the delivery: the
// collector's heap goal grows with what stays live).
const DefaultRecentCapacity = 8192

// NewRecent returns an empty Recent keeping capacity deliveries.
func NewRecent(capacity int) *Recent {
	if capacity <= 0 {
		capacity = DefaultRecentCapacity
	}
	return &Recent{seen: make(map[[sha256.Size]byte]struct{}, capacity), ring: make([][sha256.Size]byte, capacity)}
}

// Remember records e, a Clerk delivery whose signature the caller verified
// against an active secret and whose facts it read from e.Payload, as the
// ledger entry it is about to append.
func (r *Recent) Remember(e domain.LedgerEntry) {
	if e.Source != domain.SourceClerk {
		return
	}
	d := recentDigest(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.seen[d]; known {
		return
	}
	delete(r.seen, r.ring[r.next])
	r.ring[r.next] = d
	r.next = (r.next + 1) % len(r.ring)
	r.seen[d] = struct{}{}
}

// covers reports whether e is, fact for fact and byte for byte, a
// delivery Remember recorded.
func (r *Recent) covers(e domain.LedgerEntry) bool {
	if r == nil || e.Source != domain.SourceClerk {
		return false
	}
	d := recentDigest(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.seen[d]
	return ok
}

// recentDigest is the SHA-256 of everything the full origin check of a
// Clerk row covers: svix id, timestamp and signature, the facts, the
// payload, each preceded by its length so that no two entries give the
// same input.
func recentDigest(e domain.LedgerEntry) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	text := func(s string) { field([]byte(s)) }
	text(e.SvixID)
	text(e.SvixTimestamp.UTC().Format(time.RFC3339Nano))
	text(e.Signature)
	text(e.EventType)
	text(e.SubjectID)
	text(e.InstanceID)
	text(e.EventTime.UTC().Format(time.RFC3339Nano))
	text(e.TimestampUnit)
	field(e.Payload)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// WithRecent makes v accept the rows of deliveries r recorded without
// verifying them again (see Recent). It returns v.
func (v *OriginVerifier) WithRecent(r *Recent) *OriginVerifier {
	v.recent = r
	return v
}
