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
