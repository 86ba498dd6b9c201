package forward_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/forward"
)

// hostileTypes are event types a ledger row can hold (the column is TEXT;
// rows written by hand or before types were checked) that would make an
// invalid or a wildcard subject if copied as they are.
var hostileTypes = []string{
	"", ".", "..", "user.", ".user", "user..created", "user.*", "user.>", "*", ">", "user.*.x",
	"user created", "user\tcreated", "user\r\n.created", "user\x00created", "user\x7f", "user.\xff\xfe", "ünïcode.ẞ",
	"%", "%25", "user.%", "user.%2A", "user/created", "a.b.c.d.e.f", "user.created ", "UPPER.Case",
	strings.Repeat("x", 600), strings.Repeat("x.", 300),
	// The escaped forms of other entries: still their own subjects.
	"user.%2E", "user.%20created",
}

// validSubject is NATS's rule for a subject one may publish on: tokens
// separated by '.', none empty, none holding white space or a wildcard,
// printable ASCII only here.
func validSubject(s string) bool {
	if len(s) == 0 || len(s) > forward.MaxSubjectLen {
		return false
	}
	for _, token := range strings.Split(s, ".") {
		if token == "" || token == "*" || token == ">" {
			return false
		}
		for i := 0; i < len(token); i++ {
			c := token[i]
			if c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return false
			}
		}
	}
	return true
}

func TestSubjectOfClerkTypesIsPrefixAndType(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{
		"user.updated":                   "clerk.user.updated",
		"user.created":                   "clerk.user.created",
		"organizationMembership.created": "clerk.organizationMembership.created",
		"session.pending":                "clerk.session.pending",
		"webhookd.user.access_changed":   "clerk.webhookd.user.access_changed",
		"waitlistEntry.created":          "clerk.waitlistEntry.created",
	} {
		require.Equal(t, want, forward.Subject(forward.DefaultSubjectPrefix, typ))
	}
	require.Equal(t, "prod.clerk.user.updated", forward.Subject("prod.clerk", "user.updated"))
}

// Every hostile type maps to a valid subject under the prefix, no two to
// the same one, and none is matched by clerk.user.* unless it is a
// three-token user type.
func TestHostileTypesMapToDistinctValidSubjects(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, typ := range append(hostileTypes, clerkTypes...) {
		s := forward.Subject("clerk", typ)
		require.True(t, validSubject(s), "type %q → invalid subject %q", typ, s)
		require.True(t, strings.HasPrefix(s, "clerk."), "type %q → %q", typ, s)
		if other, dup := seen[s]; dup {
			t.Fatalf("types %q and %q both map to %q", other, typ, s)
		}
		seen[s] = typ
	}
	require.Equal(t, "clerk.user.%2A", forward.Subject("clerk", "user.*"))
	require.Equal(t, "clerk.%", forward.Subject("clerk", ""))
	require.Equal(t, "clerk.user.%.created", forward.Subject("clerk", "user..created"))
	require.Equal(t, "clerk.user%20created", forward.Subject("clerk", "user created"))
	require.Equal(t, "clerk.%25", forward.Subject("clerk", "%"))
	long := forward.Subject("clerk", strings.Repeat("x", 600))
	require.True(t, strings.HasPrefix(long, "clerk.%long."), long)
	require.Len(t, long, len("clerk.%long.")+64)
}

func TestSubjectPrefixIsChecked(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"clerk", "prod.clerk", "a-b_c.D9"} {
		require.NoError(t, forward.CheckSubjectPrefix(ok), ok)
	}
	for _, bad := range []string{"", ".", "clerk.", ".clerk", "cl erk", "clerk.*", "clerk.>", "a..b", "ü"} {
		require.Error(t, forward.CheckSubjectPrefix(bad), bad)
	}
}

func TestTypeFilter(t *testing.T) {
	t.Parallel()
	all, err := forward.ParseTypeFilter("")
	require.NoError(t, err)
	require.True(t, all.Match("anything.at_all"))
	f, err := forward.ParseTypeFilter("user.*, organization*  session.created")
	require.NoError(t, err)
	for typ, want := range map[string]bool{
		"user.created": true, "user.deleted": true, "user": false, "users.created": false,
		"organization.created": true, "organizationMembership.deleted": true,
		"session.created": true, "session.ended": false, "webhookd.user.access_changed": false,
	} {
		require.Equal(t, want, f.Match(typ), typ)
	}
	_, err = forward.ParseTypeFilter("user.[")
	require.EqualError(t, err, `pattern "user.[": malformed glob (path.Match syntax: *, ?, [a-z], \ to escape)`)
}

func TestStreamAndURLChecks(t *testing.T) {
	t.Parallel()
	require.NoError(t, forward.CheckStream("CLERK"))
	for _, bad := range []string{"", "CL.ERK", "CL ERK", "CL*", "CL>", "a/b", strings.Repeat("S", 256)} {
		require.Error(t, forward.CheckStream(bad), bad)
	}
	for _, ok := range []string{"nats://127.0.0.1:4222", "127.0.0.1:4222", "nats://a:4222,nats://b:4222", "tls://user:secret@host:4222"} {
		require.NoError(t, forward.CheckURL(ok), ok)
	}
	err := forward.CheckURL("http://user:hunter2@host:4222")
	require.EqualError(t, err, `scheme "http": must be nats, tls, ws or wss`)
	require.NotContains(t, err.Error(), "hunter2")
	require.Error(t, forward.CheckURL("nats://:4222"))
}
