package domain_test

import (
	"testing"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// benchUserUpdated is a realistic user.updated body (1,752 bytes: two email
// addresses, a Google account, metadata and event_attributes), the same
// bytes on every run.
func benchUserUpdated(b *testing.B) []byte {
	b.Helper()
	return clerkfake.MustBuild(domain.EventUserUpdated, clerkfake.Options{Seed: 1, Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
}

// BenchmarkParseEnvelope is the ingress's cost per delivery.
func BenchmarkParseEnvelope(b *testing.B) {
	body := benchUserUpdated(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := domain.ParseEnvelope(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEnvelopeAndUser is the users projection's cost per user
// event: the envelope, then the user in its data.
func BenchmarkParseEnvelopeAndUser(b *testing.B) {
	body := benchUserUpdated(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := domain.ParseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := domain.ParseUser(env.Data, env.Time); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseUserEvent is BenchmarkParseEnvelopeAndUser in one call, as
// the users projection makes it.
func BenchmarkParseUserEvent(b *testing.B) {
	body := benchUserUpdated(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := domain.ParseUserEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseOrganizationEvent is the practices projection's cost per
// organization.updated event (one pass over envelope and data).
func BenchmarkParseOrganizationEvent(b *testing.B) {
	body := clerkfake.MustBuild(domain.EventOrganizationUpdated, clerkfake.Options{Seed: 1, Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := domain.ParseOrganizationEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMembershipEvent is the memberships projection's cost per
// organizationMembership.updated event (one pass over envelope and data,
// with the nested organization and public_user_data).
func BenchmarkParseMembershipEvent(b *testing.B) {
	body := clerkfake.MustBuild(domain.EventMembershipUpdated, clerkfake.Options{Seed: 1, Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := domain.ParseMembershipEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMembershipReference is what the memberships projection
// paid before the single pass: ParseEnvelope, then the map-based
// reference reader over data.
func BenchmarkParseMembershipReference(b *testing.B) {
	body := clerkfake.MustBuild(domain.EventMembershipUpdated, clerkfake.Options{Seed: 1, Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := domain.ParseEnvelope(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := domain.DecodeMembership(env.Data, env.Time); err != nil {
			b.Fatal(err)
		}
	}
}
