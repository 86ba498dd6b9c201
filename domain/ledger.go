package domain

import "time"

// Sources of ledger entries. Clerk events arrive signed through Svix;
// webhookd's own events (an operator assigning a role, an export being
// taken) are appended by webhookd itself so that the audit trail and any
// rebuild of the read models see them too; what reconciliation read from
// Clerk's Backend API (a user as the API returned it, a user the API no
// longer knows) is appended by webhookd under its own source, so an
// auditor sees where each fact came from.
const (
	SourceClerk    = "clerk"
	SourceClerkAPI = "clerk-api"
	SourceWebhookd = "webhookd"
)

// SignedByWebhookd reports whether entries of source are signed with
// webhookd's key when appended (webhookd's own entries and reconciliation
// snapshots), rather than by Clerk's Svix.
func SignedByWebhookd(source string) bool {
	return source == SourceWebhookd || source == SourceClerkAPI
}

// LedgerEntry is one event as the ledger keeps it: the raw body byte for
// byte and the facts needed to prove and find it.
type LedgerEntry struct {
	// Offset is the ledger's own sequence number, set on append. It is unique
	// but not gapless, and commit order may differ from offset order.
	Offset int64
	// SvixID is the idempotency key: Svix reuses it across retries. For
	// webhookd's own events it is a generated id starting with "whd_".
	SvixID string
	// SvixTimestamp is the signed svix-timestamp header (zero for webhookd's
	// own events).
	SvixTimestamp time.Time
	// Signature is the svix-signature header as received (empty for
	// webhookd's own events).
	Signature string
	Source    string
	EventType string
	// SubjectID is data.id of the event.
	SubjectID  string
	InstanceID string
	// EventTime is Clerk's "timestamp" (or, for webhookd's own events, when
	// it was recorded).
	EventTime time.Time
	// TimestampUnit records how the envelope's timestamp was read.
	TimestampUnit string
	ReceivedAt    time.Time
	// SourceIP is the address the delivery came from ("" when unknown).
	SourceIP string
	Payload  []byte
}

// AppendResult tells whether an append stored a new entry or found the
// svix-id already in the ledger.
type AppendResult struct {
	Duplicate bool
	// Offset is the stored entry's offset; 0 for a duplicate.
	Offset int64
}
