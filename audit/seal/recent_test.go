package seal_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// TestRecentAcceptsOnlyWhatWasVerified: a verifier that cannot check the
// signature itself (it holds another secret) accepts a remembered
// delivery's row unchanged, and refuses it as soon as any fact the full
// check covers differs: a payload changed by one byte (same length), a
// signature, timestamp, type, subject, instance, event time or unit, or
// another svix id. A webhookd entry is never taken for a remembered one.
func TestRecentAcceptsOnlyWhatWasVerified(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	e := clerkEntry(t, oldSecret, domain.EventUserUpdated, "user_recent", 7, at)
	recent := seal.NewRecent(16)
	v := verifier(t, newSecret).WithRecent(recent)
	require.ErrorIs(t, v.Verify(e), seal.ErrOrigin, "not remembered: the full check, which fails under newSecret")

	recent.Remember(e)
	require.NoError(t, v.Verify(e), "remembered, unchanged")
	stored := e
	stored.Offset, stored.ReceivedAt, stored.SourceIP = 42, at.Add(time.Second), "198.51.100.1"
	require.NoError(t, v.Verify(stored), "what the ledger adds (offset, received_at, source_ip) is not signed")

	flipped := bytes.Clone(e.Payload)
	i := bytes.Index(flipped, []byte(`"first_name"`))
	require.Positive(t, i)
	flipped[i+1] = 'F'
	for name, change := range map[string]func(*domain.LedgerEntry){
		"payload":        func(x *domain.LedgerEntry) { x.Payload = flipped },
		"signature":      func(x *domain.LedgerEntry) { x.Signature = "v1,AAAA" + x.Signature[7:] },
		"svix_timestamp": func(x *domain.LedgerEntry) { x.SvixTimestamp = x.SvixTimestamp.Add(time.Second) },
		"event_type":     func(x *domain.LedgerEntry) { x.EventType = domain.EventUserDeleted },
		"subject_id":     func(x *domain.LedgerEntry) { x.SubjectID = "user_other" },
		"instance_id":    func(x *domain.LedgerEntry) { x.InstanceID = "ins_other" },
		"event_time":     func(x *domain.LedgerEntry) { x.EventTime = x.EventTime.Add(time.Millisecond) },
		"timestamp_unit": func(x *domain.LedgerEntry) { x.TimestampUnit = domain.UnitSeconds },
		"svix_id":        func(x *domain.LedgerEntry) { x.SvixID = "msg_other" },
	} {
		changed := e
		change(&changed)
		require.ErrorIs(t, v.Verify(changed), seal.ErrOrigin, "%s changed after it was verified", name)
	}

	internal := e
	internal.Source = domain.SourceWebhookd
	recent.Remember(internal)
	require.ErrorIs(t, v.Verify(internal), seal.ErrOrigin, "only Clerk deliveries are remembered")
}

// TestRecentForgetsTheOldest: past its capacity, the oldest delivery is
// forgotten and its row gets the full check again.
func TestRecentForgetsTheOldest(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	recent := seal.NewRecent(3)
	v := verifier(t, newSecret).WithRecent(recent)
	var entries []domain.LedgerEntry
	for i := range 4 {
		e := clerkEntry(t, oldSecret, domain.EventUserCreated, fmt.Sprintf("user_r%d", i), int64(100+i), at)
		entries = append(entries, e)
		recent.Remember(e)
		recent.Remember(e) // again: a retry of the same delivery takes no second place
	}
	require.ErrorIs(t, v.Verify(entries[0]), seal.ErrOrigin, "the oldest is forgotten")
	for _, e := range entries[1:] {
		require.NoError(t, v.Verify(e))
	}
}
