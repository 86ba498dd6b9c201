package forward

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
)

// DefaultSubjectPrefix is WEBHOOKD_FORWARD_SUBJECT_PREFIX's default: the
// first token of every subject the forwarder publishes on. The stream it
// creates takes prefix + ".>".
const DefaultSubjectPrefix = "clerk"

// CheckSubjectPrefix refuses a prefix that is not one or more dot-separated
// tokens of letters, digits, '_' and '-'.
func CheckSubjectPrefix(prefix string) error {
	for _, token := range strings.Split(prefix, ".") {
		if token == "" {
			return errors.New("must be dot-separated tokens of letters, digits, '_' or '-' (clerk, prod.clerk)")
		}
		for i := 0; i < len(token); i++ {
			if !plain(token[i]) {
				return errors.New("must be dot-separated tokens of letters, digits, '_' or '-' (clerk, prod.clerk)")
			}
		}
	}
	return nil
}

// Subject is the NATS subject of a ledger entry of eventType under prefix
// (DefaultSubjectPrefix unless configured): "clerk.<event type>", the event type's dots being the subject's token
// separators (user.updated → clerk.user.updated). webhookd's own entries
// keep their type too (webhookd.user.access_changed →
// clerk.webhookd.user.access_changed): clerk.user.* does not match them,
// clerk.> does.
//
// Every event type maps to one valid subject, and two event types never to
// the same one, whatever bytes they hold (the ledger may hold rows written
// before types were checked, or by hand): within a token, a byte other
// than an ASCII letter, digit, '_' or '-' is written %XX (its hex value;
// '%' itself is %25), so no token holds a wildcard ('*', '>'), white space
// or a control byte, and an empty token (a leading, trailing or doubled
// dot) is written "%". Event types Clerk sends ([A-Za-z][A-Za-z0-9_]*
// tokens) are unchanged. A subject that would be longer than
// MaxSubjectLen (NATS refuses a protocol line over 4 KiB) is
// "clerk.%long.<sha256 of the type, hex>" instead: escaping never
// produces a "%l" token, so that cannot be another type's subject.
func Subject(prefix, eventType string) string {
	s := escapedSubject(prefix, eventType)
	if len(s) > MaxSubjectLen {
		sum := sha256.Sum256([]byte(eventType))
		return prefix + ".%long." + hex.EncodeToString(sum[:])
	}
	return s
}

// MaxSubjectLen is the longest subject Subject returns (for a prefix of
// up to 400 bytes).
const MaxSubjectLen = 512

func escapedSubject(prefix, eventType string) string {
	var b strings.Builder
	b.Grow(len(prefix) + 1 + len(eventType))
	b.WriteString(prefix)
	for _, token := range strings.Split(eventType, ".") {
		b.WriteByte('.')
		if token == "" {
			b.WriteByte('%')
			continue
		}
		for i := 0; i < len(token); i++ {
			c := token[i]
			if plain(c) {
				b.WriteByte(c)
				continue
			}
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// TypeFilter selects the event types to forward: glob patterns as
// path.Match reads them ('*' matches any run of characters, '?' one,
// [a-z] a class), matched against the event type itself (not the
// subject). "user.*" matches user.created and user.updated; "*" matches
// every type. An empty filter forwards every entry.
type TypeFilter struct {
	patterns []string
}

// ParseTypeFilter reads WEBHOOKD_FORWARD_TYPES: patterns separated by
// spaces or commas. A malformed pattern is an error naming it.
func ParseTypeFilter(s string) (TypeFilter, error) {
	var f TypeFilter
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if _, err := path.Match(p, ""); err != nil {
			return TypeFilter{}, fmt.Errorf("pattern %q: %w", p, errors.New("malformed glob (path.Match syntax: *, ?, [a-z], \\ to escape)"))
		}
		f.patterns = append(f.patterns, p)
	}
	return f, nil
}

// Match reports whether entries of eventType are forwarded.
func (f TypeFilter) Match(eventType string) bool {
	if len(f.patterns) == 0 {
		return true
	}
	for _, p := range f.patterns {
		if ok, _ := path.Match(p, eventType); ok {
			return true
		}
	}
	return false
}

// String lists the patterns, comma-separated ("" for every type).
func (f TypeFilter) String() string { return strings.Join(f.patterns, ",") }
