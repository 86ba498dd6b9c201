package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webhookd/webhookd/domain"
)

// tokenPrefix starts every admin token, so a leaked one is recognisable
// (secret scanners, logs) and never confused with a Clerk secret.
const tokenPrefix = "whdadm_"

// Token is one row of admin_tokens, without its hash.
type Token struct {
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Principal is who a request acts as: a token's name and role.
type Principal struct {
	Name string
	Role string
}

// IsAdmin reports whether p may take admin actions.
func (p Principal) IsAdmin() bool { return p.Role == domain.RoleAdmin }

// Tokens keeps admin tokens in admin_tokens and records each change in
// the ledger through Recorder.
type Tokens struct {
	Pool     *pgxpool.Pool
	Recorder *Recorder
}

// NewToken returns a new random token: the prefix and 32 random bytes,
// base64url.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is what admin_tokens keeps of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func fingerprint(hash []byte) string { return hex.EncodeToString(hash[:8]) }

// Create makes a token called name with role, records it in the ledger
// (actor: who creates it) and returns it; it is shown once and never
// stored. A name in use, even by a revoked token, is refused.
func (t *Tokens) Create(ctx context.Context, name, role, actor string) (string, error) {
	if !domain.ValidTokenName(name) {
		return "", domain.Errorf(domain.EINVALID, "invalid_token_name", "a token name is 1 to 64 letters, digits, '.', '_', '-' or '@'")
	}
	if role != domain.RoleViewer && role != domain.RoleAdmin {
		return "", domain.Errorf(domain.EINVALID, "invalid_role", "role must be viewer or admin")
	}
	var exists bool
	if err := t.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM admin_tokens WHERE name = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("read admin tokens: %w", err)
	}
	if exists {
		return "", domain.Errorf(domain.ECONFLICT, "token_exists", "a token called %q exists already (revoked tokens keep their name); choose another name", name)
	}
	token := NewToken()
	hash := HashToken(token)
	now := t.Recorder.now()
	if err := t.Recorder.Record(ctx, domain.EventTokenCreated, name, domain.TokenEvent{Name: name, Role: role, Fingerprint: fingerprint(hash), Actor: actor}); err != nil {
		return "", err
	}
	_, err := t.Pool.Exec(ctx, `INSERT INTO admin_tokens (name, role, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)`,
		name, role, hash, now, actor)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return "", domain.Errorf(domain.ECONFLICT, "token_exists", "a token called %q exists already", name)
	}
	if err != nil {
		return "", fmt.Errorf("store admin token: %w", err)
	}
	return token, nil
}

// List returns every token, revoked ones included, by name.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.Pool.Query(ctx, `SELECT name, role, created_at, created_by, revoked_at, last_used_at FROM admin_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read admin tokens: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) {
		var tk Token
		err := r.Scan(&tk.Name, &tk.Role, &tk.CreatedAt, &tk.CreatedBy, &tk.RevokedAt, &tk.LastUsedAt)
		return tk, err
	})
}

// Revoke revokes the token called name, records it in the ledger and ends
// its console sessions.
func (t *Tokens) Revoke(ctx context.Context, name, actor string) error {
	var role string
	var revoked *time.Time
	err := t.Pool.QueryRow(ctx, `SELECT role, revoked_at FROM admin_tokens WHERE name = $1`, name).Scan(&role, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "no_such_token", "no token called %q", name)
	}
	if err != nil {
		return fmt.Errorf("read admin tokens: %w", err)
	}
	if revoked != nil {
		return domain.Errorf(domain.ECONFLICT, "token_revoked", "token %q was revoked at %s", name, revoked.UTC().Format(time.RFC3339))
	}
	if err := t.Recorder.Record(ctx, domain.EventTokenRevoked, name, domain.TokenEvent{Name: name, Role: role, Actor: actor}); err != nil {
		return err
	}
	if _, err := t.Pool.Exec(ctx, `UPDATE admin_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL`, name, t.Recorder.now()); err != nil {
		return fmt.Errorf("revoke admin token: %w", err)
	}
	if _, err := t.Pool.Exec(ctx, `DELETE FROM admin_sessions WHERE token_name = $1`, name); err != nil {
		return fmt.Errorf("end the token's sessions: %w", err)
	}
	return nil
}

// Authenticate returns the principal of a live token, or an
// EUNAUTHORIZED error that does not say whether the token exists.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return Principal{}, errBadToken
	}
	var p Principal
	err := t.Pool.QueryRow(ctx, `UPDATE admin_tokens SET last_used_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL RETURNING name, role`,
		HashToken(token), t.Recorder.now()).Scan(&p.Name, &p.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, errBadToken
	}
	if err != nil {
		return Principal{}, unavailable(err)
	}
	return p, nil
}

var errBadToken = domain.Errorf(domain.EUNAUTHORIZED, "invalid_token", "the token is not valid (unknown or revoked)")

// unavailable wraps a database failure: 503, message without detail.
func unavailable(err error) error {
	return &domain.Error{Code: domain.EUNAVAILABLE, Reason: "database_unavailable", Message: "the database cannot be read right now; retry later", Err: err}
}
