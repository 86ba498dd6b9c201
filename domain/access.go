package domain

import "strings"

// Event types of the admin console and API (package admin). Like every
// entry webhookd appends, they are built with NewInternalEntry and signed
// (seal.SignInternalEntry), so they are sealed, exported and verified like
// Clerk's.
const (
	// EventTokenCreated records a new admin API token (its name, role and
	// a fingerprint of its hash; never the token).
	EventTokenCreated = "webhookd.token.created"
	// EventTokenRevoked records the revocation of an admin API token.
	EventTokenRevoked = "webhookd.token.revoked"
	// EventPersonalDataAccessed records a read of personal data through
	// the admin API or console: who, which user, which fields, why, when.
	EventPersonalDataAccessed = "webhookd.personal_data.accessed"
)

// Admin roles. A viewer reads (redacted); an admin also reveals personal
// fields, changes access and exports.
const (
	RoleViewer = "viewer"
	RoleAdmin  = "admin"
)

// TokenEvent is the data of an EventTokenCreated or EventTokenRevoked event.
type TokenEvent struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
	// Fingerprint is the first 16 hex digits of the token's SHA-256: it
	// names the token in the audit trail without letting anyone use it.
	Fingerprint string `json:"fingerprint,omitempty"`
	Actor       string `json:"actor"`
}

// PersonalDataAccess is the data of an EventPersonalDataAccessed event.
type PersonalDataAccess struct {
	// ClerkID is the user whose data was read; for a search, IDs lists
	// the users it found and ClerkID is empty.
	ClerkID string   `json:"id,omitempty"`
	IDs     []string `json:"ids,omitempty"`
	// Actor is the token's name, Role its role.
	Actor string `json:"actor"`
	Role  string `json:"role"`
	// Action is search, open, timeline, reveal or export.
	Action string `json:"action"`
	// Fields are the personal fields shown in clear (empty: redacted
	// view), or for a search the fields the query matched.
	Fields []string `json:"fields"`
	Reason string   `json:"reason,omitempty"`
	// Via is api or console.
	Via string `json:"via"`
}

// ValidTokenName reports whether name can name a token: 1 to 64 letters,
// digits, '.', '_', '-' or '@'.
func ValidTokenName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r))
	}) < 0
}
