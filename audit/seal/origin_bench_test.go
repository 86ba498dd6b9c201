package seal_test

import (
	"testing"
	"time"
)

// BenchmarkVerifyOrigin measures the origin check the live users
// projection and the sealer make per entry: a Clerk user.updated (Svix
// HMAC and the envelope's facts) and an access change of webhookd's
// (Ed25519).
func BenchmarkVerifyOrigin(b *testing.B) {
	t := &testing.T{}
	at := time.Now().UTC()
	v := verifier(t, newSecret, oldSecret)
	b.Run("clerk", func(b *testing.B) {
		e := clerkEntry(t, oldSecret, "user.updated", "user_1", 1, at) // the second secret tried
		b.SetBytes(int64(len(e.Payload)))
		for b.Loop() {
			if err := v.Verify(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("webhookd", func(b *testing.B) {
		e := accessEntry(t, testKey, "user_1", "ADMIN", at)
		for b.Loop() {
			if err := v.Verify(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
