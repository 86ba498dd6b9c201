package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/webhookd/webhookd/domain"
)

// ConflictsTable keeps deliveries whose svix-id the ledger already holds
// with a different body (migration 004).
const ConflictsTable = "ledger_conflicts"

// Conflict is an append whose svix-id the ledger holds with a different
// body. The ledger keeps the first body; the other is in ConflictsTable.
type Conflict struct {
	SvixID string
	// StoredSHA256 and ReceivedSHA256 are the hex SHA-256 digests of the
	// body in the ledger and of the one received.
	StoredSHA256, ReceivedSHA256 string
	// SourceIP is where the conflicting body came from ("" when unknown).
	SourceIP string
	// Recorded is false when this body was already in ConflictsTable (a
	// re-delivery of the same conflicting body).
	Recorded bool
}

// checkConflict compares a duplicate's body with the stored one (by
// SHA-256) and, when they differ, records the duplicate in ConflictsTable
// and reports it to Config.Conflicted. An error (the record could not be
// written) is to be answered as a failed append, so that the sender
// retries and the body is not lost.
func (s *Store) checkConflict(ctx context.Context, e domain.LedgerEntry, stored []byte) error {
	received := sha256.Sum256(e.Payload)
	if bytes.Equal(received[:], stored) {
		return nil
	}
	var ts *time.Time
	if !e.SvixTimestamp.IsZero() {
		ts = &e.SvixTimestamp
	}
	var ip, sig *string
	if e.SourceIP != "" {
		ip = &e.SourceIP
	}
	if e.Signature != "" {
		sig = &e.Signature
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO `+ConflictsTable+`
		(svix_id, stored_sha256, received_sha256, payload, svix_timestamp, signature, received_at, source_ip)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::inet)
		ON CONFLICT (svix_id, received_sha256) DO NOTHING`,
		e.SvixID, stored, received[:], e.Payload, ts, sig, e.ReceivedAt, ip)
	if err != nil {
		return translate(err, "record conflicting duplicate")
	}
	if s.cfg.Conflicted != nil {
		s.cfg.Conflicted(Conflict{
			SvixID:         e.SvixID,
			StoredSHA256:   hex.EncodeToString(stored),
			ReceivedSHA256: hex.EncodeToString(received[:]),
			SourceIP:       e.SourceIP,
			Recorded:       tag.RowsAffected() == 1,
		})
	}
	return nil
}
