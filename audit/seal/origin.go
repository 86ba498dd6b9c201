package seal

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
	"github.com/webhookd/webhookd/domain"
)

// Origin of ledger entries.
//
// Every ledger row says where it came from (source), and proves it:
//
//   - a Clerk row (source "clerk") keeps the svix-signature header Clerk's
//     Svix sent, which is an HMAC of "<svix_id>.<svix_timestamp>.<payload>"
//     under the endpoint's signing secret; VerifyOrigin recomputes it from
//     the stored svix_id, svix_timestamp and payload with the Svix library,
//     against every configured secret, and checks that the facts stored
//     beside the payload (event type, subject, instance, event time and its
//     unit) are what the signed payload says;
//   - a row webhookd appends itself (source "webhookd": access changes,
//     export records) is signed when appended with webhookd's Ed25519 key,
//     the key that signs checkpoints (SignInternalEntry). Its signature
//     column holds "ed25519:<key id>:<base64 signature>" over
//     OriginMessage, which covers every fact of the canonical entry and the
//     payload;
//   - a row reconciliation appends (source "clerk-api": a user object as
//     Clerk's Backend API returned it, or a user the API answered 404
//     for) carries no Svix signature, since Clerk's API signs nothing: it
//     is signed by webhookd when appended, exactly like a webhookd row,
//     and checked the same way.
//
// A row inserted out of band with webhookd's database role has no valid
// proof: nobody holding only database credentials has Clerk's secret or
// webhookd's private key.

// originTag starts the message webhookd signs for its own entries, so that
// the signature can never be taken for a checkpoint's or a manifest's.
const originTag = "webhookd-entry-origin-v1\n"

// internalSignaturePrefix starts the signature column of an entry webhookd
// signed.
const internalSignaturePrefix = "ed25519:"

// ErrOrigin is matched by every error of OriginVerifier.Verify: the entry
// does not prove that it comes from its source.
var ErrOrigin = errors.New("ledger entry does not prove its origin")

// OriginError says which entry failed the origin check and why. Its text
// names the entry by offset, svix id, source and type, never by content.
type OriginError struct {
	Offset    int64
	SvixID    string
	Source    string
	EventType string
	// Reason says what failed, e.g. "the svix signature matches none of
	// the 2 configured Clerk signing secrets".
	Reason string
}

func (e *OriginError) Error() string {
	return fmt.Sprintf("ledger entry at offset %d (svix_id %s, source %s, %s) does not prove its origin: %s",
		e.Offset, e.SvixID, e.Source, e.EventType, e.Reason)
}

// Is makes errors.Is(err, ErrOrigin) true.
func (e *OriginError) Is(target error) bool { return target == ErrOrigin }

// OriginVerifier checks ledger entries' origin proofs (see the comment
// above). It is safe for concurrent use.
type OriginVerifier struct {
	hooks []*svix.Webhook
	keys  map[string]ed25519.PublicKey
	// recent, when set, holds deliveries this process verified (WithRecent).
	recent *Recent
}

// NewOriginVerifier returns a verifier that accepts Clerk rows signed with
// any of secrets (whsec_…, already checked by ingress.ParseSecrets: the
// active ones and any retired ones kept for verification) and webhookd
// rows signed with any of keys. With no key, webhookd rows cannot be
// verified and always fail.
func NewOriginVerifier(secrets []string, keys ...ed25519.PublicKey) (*OriginVerifier, error) {
	v := &OriginVerifier{keys: map[string]ed25519.PublicKey{}}
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("signing secret %d: not base64 after whsec_", i+1)
		}
		v.hooks = append(v.hooks, wh)
	}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("origin key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		v.keys[KeyID(k)] = k
	}
	return v, nil
}

// Verify checks that e proves its origin; the error is an *OriginError.
func (v *OriginVerifier) Verify(e domain.LedgerEntry) error {
	var reason string
	switch e.Source {
	case domain.SourceClerk:
		reason = v.clerk(e)
	case domain.SourceWebhookd, domain.SourceClerkAPI:
		reason = v.internal(e)
	default:
		reason = "unknown source"
	}
	if reason == "" {
		return nil
	}
	return &OriginError{Offset: e.Offset, SvixID: e.SvixID, Source: e.Source, EventType: e.EventType, Reason: reason}
}

// clerk checks a Clerk row and returns why it fails ("" when it does not).
func (v *OriginVerifier) clerk(e domain.LedgerEntry) string {
	if e.Signature == "" || e.SvixTimestamp.IsZero() || e.SvixID == "" {
		return "it has no svix signature, timestamp or id"
	}
	// The signature covers the timestamp header in whole seconds; a stored
	// time with a fraction is not the one that was signed.
	if e.SvixTimestamp.Nanosecond() != 0 {
		return "its svix_timestamp is not the signed one (it has a fraction of a second)"
	}
	if v.recent.covers(e) {
		// Exactly what this process verified before appending it.
		return ""
	}
	// The headers as Svix sent them, rebuilt from the row. The library
	// reads them with Header.Get, so they are set with Set. The 5-minute
	// tolerance is for deliveries, not for stored rows: the signed
	// timestamp is the stored one because it is what is verified.
	h := http.Header{}
	h.Set("svix-id", e.SvixID)
	h.Set("svix-timestamp", strconv.FormatInt(e.SvixTimestamp.Unix(), 10))
	h.Set("svix-signature", e.Signature)
	matched := false
	for _, wh := range v.hooks {
		if wh.VerifyIgnoringTimestamp(e.Payload, h) == nil {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Sprintf("the svix signature matches none of the %d configured Clerk signing secrets (CLERK_WEBHOOK_SIGNING_SECRET, WEBHOOKD_RETIRED_SIGNING_SECRETS)", len(v.hooks))
	}
	// The facts beside the payload must be the payload's: the projections
	// read some of them (subject, event time) from the columns.
	env, err := domain.ReadEnvelope(e.Payload)
	if err != nil {
		return "its signed payload is not a Clerk event envelope"
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"event_type", env.Type == e.EventType},
		{"subject_id", env.SubjectID == e.SubjectID},
		{"instance_id", env.InstanceID == e.InstanceID},
		{"event_time", env.Time.Equal(e.EventTime)},
		{"timestamp_unit", env.TimestampUnit == e.TimestampUnit},
	} {
		if !f.ok {
			return "its " + f.name + " is not what the signed payload says"
		}
	}
	return ""
}

// internal checks a webhookd row and returns why it fails ("" when it
// does not).
func (v *OriginVerifier) internal(e domain.LedgerEntry) string {
	rest, ok := strings.CutPrefix(e.Signature, internalSignaturePrefix)
	if !ok {
		return "it is not signed by webhookd (no ed25519:<key id>:<signature>)"
	}
	keyID, sig64, ok := strings.Cut(rest, ":")
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if !ok || err != nil || len(sig) != ed25519.SignatureSize {
		return "its webhookd signature is malformed"
	}
	key, known := v.keys[keyID]
	if !known {
		return fmt.Sprintf("it is signed by key %s, which is not webhookd's signing key (WEBHOOKD_SIGNING_KEY)", safeKeyID(keyID))
	}
	if !ed25519.Verify(key, OriginMessage(e), sig) {
		return fmt.Sprintf("its webhookd signature (key %s) does not match its content: the entry was altered or forged", keyID)
	}
	return ""
}

// safeKeyID returns id if it looks like a key id (16 hex digits), so that
// a forged row cannot put arbitrary text into a log line.
func safeKeyID(id string) string {
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return "(malformed key id)"
	}
	return id
}

// OriginMessage returns the bytes webhookd signs for an entry it appends
// itself: "webhookd-entry-origin-v1\n" followed by the entry's canonical
// encoding (CanonicalEntry) with an empty signature field. So the
// signature covers svix_id, source, both timestamps, type, subject,
// instance, event time and unit, received_at, source_ip and the payload.
func OriginMessage(e domain.LedgerEntry) []byte {
	entry := EntryFromLedger(e)
	entry.Signature = ""
	return AppendCanonical([]byte(originTag), &entry)
}

// SignInternalEntry signs e, an entry webhookd appends itself (source
// webhookd or clerk-api), with key: it truncates e's times to the microseconds
// PostgreSQL keeps and sets e.Signature to "ed25519:<key id>:<base64 of
// the Ed25519 signature of OriginMessage(e)>".
func SignInternalEntry(key ed25519.PrivateKey, e *domain.LedgerEntry) {
	for _, t := range []*time.Time{&e.SvixTimestamp, &e.EventTime, &e.ReceivedAt} {
		if !t.IsZero() {
			*t = t.UTC().Truncate(time.Microsecond)
		}
	}
	e.Signature = ""
	sig := ed25519.Sign(key, OriginMessage(*e))
	e.Signature = internalSignaturePrefix + KeyID(key.Public().(ed25519.PublicKey)) + ":" + base64.StdEncoding.EncodeToString(sig)
}
