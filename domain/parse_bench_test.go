package domain_test

import (
	"testing"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// benchParse measures parse on a realistic body of eventType (a
// user.updated is 1,752 bytes: two email addresses, a Google account,
// metadata and event_attributes), the same bytes on every run.
func benchParse(b *testing.B, eventType string, parse func(body []byte) error) {
	b.Helper()
	body := clerkfake.MustBuild(eventType, clerkfake.Options{Seed: 1, Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseEnvelope is the ingress's cost per delivery.
func BenchmarkParseEnvelope(b *testing.B) {
	benchParse(b, domain.EventUserUpdated, func(body []byte) error {
		_, err := domain.ParseEnvelope(body)
		return err
	})
}

// BenchmarkParseEnvelopeAndUser is the users projection's cost per user
// event: the envelope, then the user in its data.
func BenchmarkParseEnvelopeAndUser(b *testing.B) {
	benchParse(b, domain.EventUserUpdated, func(body []byte) error {
		env, err := domain.ParseEnvelope(body)
		if err != nil {
			return err
		}
		_, err = domain.ParseUser(env.Data, env.Time)
		return err
	})
}

// BenchmarkParseUserEvent is BenchmarkParseEnvelopeAndUser in one call, as
// the users projection makes it.
func BenchmarkParseUserEvent(b *testing.B) {
	benchParse(b, domain.EventUserUpdated, func(body []byte) error {
		_, err := domain.ParseUserEvent(body)
		return err
	})
}

// BenchmarkParseOrganizationEvent is the practices projection's cost per
// organization.updated event (one pass over envelope and data).
func BenchmarkParseOrganizationEvent(b *testing.B) {
	benchParse(b, domain.EventOrganizationUpdated, func(body []byte) error {
		_, err := domain.ParseOrganizationEvent(body)
		return err
	})
}

// BenchmarkParseMembershipEvent is the memberships projection's cost per
// organizationMembership.updated event (one pass over envelope and data,
// with the nested organization and public_user_data).
func BenchmarkParseMembershipEvent(b *testing.B) {
	benchParse(b, domain.EventMembershipUpdated, func(body []byte) error {
		_, err := domain.ParseMembershipEvent(body)
		return err
	})
}

// BenchmarkParseMembershipReference is what the memberships projection
// paid before the single pass: ParseEnvelope, then the map-based
// reference reader over data.
func BenchmarkParseMembershipReference(b *testing.B) {
	benchParse(b, domain.EventMembershipUpdated, func(body []byte) error {
		env, err := domain.ParseEnvelope(body)
		if err != nil {
			return err
		}
		_, err = domain.DecodeMembership(env.Data, env.Time)
		return err
	})
}
