package projections_test

import (
	"testing"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/projections"
)

// BenchmarkDecodeUserEvent is the users projection's decoding cost per
// entry, on a realistic 1,752-byte user.updated body.
func BenchmarkDecodeUserEvent(b *testing.B) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := domain.LedgerEntry{
		Offset:    1,
		Source:    domain.SourceClerk,
		EventType: domain.EventUserUpdated,
		EventTime: at,
		Payload:   clerkfake.MustBuild(domain.EventUserUpdated, clerkfake.Options{Seed: 1, Time: at}),
	}
	b.SetBytes(int64(len(e.Payload)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := projections.DecodeUserEvent(e)
		if err != nil || ev.Kind != projections.UserProfile {
			b.Fatal(ev.Kind, err)
		}
	}
}
