package seal

import (
	"crypto/sha256"
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
	byID map[string]recentDelivery
	ring []string
	next int
}

// DefaultRecentCapacity is NewRecent's capacity when given 0: about
// 1.5 MiB of records.
const DefaultRecentCapacity = 8192

type recentDelivery struct {
	payload       [sha256.Size]byte
	svixTimestamp time.Time
	signature     string
	eventType     string
	subjectID     string
	instanceID    string
	eventTime     time.Time
	timestampUnit string
}

// NewRecent returns an empty Recent keeping capacity deliveries.
func NewRecent(capacity int) *Recent {
	if capacity <= 0 {
		capacity = DefaultRecentCapacity
	}
	return &Recent{byID: make(map[string]recentDelivery, capacity), ring: make([]string, capacity)}
}

// Remember records e, a Clerk delivery whose signature the caller verified
// against an active secret and whose facts it read from e.Payload, as the
// ledger entry it is about to append.
func (r *Recent) Remember(e domain.LedgerEntry) {
	if e.Source != domain.SourceClerk {
		return
	}
	d := recentOf(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.byID[e.SvixID]; !known {
		if old := r.ring[r.next]; old != "" {
			delete(r.byID, old)
		}
		r.ring[r.next] = e.SvixID
		r.next = (r.next + 1) % len(r.ring)
	}
	r.byID[e.SvixID] = d
}

// covers reports whether e is, fact for fact and byte for byte, a
// delivery Remember recorded.
func (r *Recent) covers(e domain.LedgerEntry) bool {
	if r == nil || e.Source != domain.SourceClerk {
		return false
	}
	r.mu.Lock()
	d, ok := r.byID[e.SvixID]
	r.mu.Unlock()
	return ok && d == recentOf(e)
}

func recentOf(e domain.LedgerEntry) recentDelivery {
	return recentDelivery{
		payload:       sha256.Sum256(e.Payload),
		svixTimestamp: e.SvixTimestamp.UTC(),
		signature:     e.Signature,
		eventType:     e.EventType,
		subjectID:     e.SubjectID,
		instanceID:    e.InstanceID,
		eventTime:     e.EventTime.UTC(),
		timestampUnit: e.TimestampUnit,
	}
}

// WithRecent makes v accept the rows of deliveries r recorded without
// verifying them again (see Recent). It returns v.
func (v *OriginVerifier) WithRecent(r *Recent) *OriginVerifier {
	v.recent = r
	return v
}
