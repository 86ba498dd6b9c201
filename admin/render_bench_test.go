package admin

import (
	"testing"
	"time"

	"github.com/webhookd/webhookd/internal/clerkfake"
)

// BenchmarkRenderPayload is the per-entry cost of a timeline: one user
// body decoded, redacted and encoded again.
func BenchmarkRenderPayload(b *testing.B) {
	body := clerkfake.MustBuild("user.updated", clerkfake.Options{Seed: 1, Time: time.Unix(1_700_000_000, 0)})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		renderPayload(body, false)
	}
}
