package projections

import (
	"strings"
	"unicode/utf8"
)

// projectedText is the text a read model column holds for s: nil for "",
// and otherwise s with every NUL (which JSON allows as \u0000 and a Clerk
// event may carry, but PostgreSQL text refuses, 22021) and any invalid
// UTF-8 replaced by U+FFFD. The ledger keeps the raw bytes, so nothing is
// lost; without this one such profile kept its user out of users, live
// and in every rebuild.
func projectedText(s string) *string {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	return nonEmpty(s)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
