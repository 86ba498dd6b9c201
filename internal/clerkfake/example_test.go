package clerkfake_test

import (
	"fmt"
	"time"

	"github.com/webhookd/webhookd/internal/clerkfake"
)

// Signing the svix Go library's test vector reproduces its signature.
func ExampleSign() {
	h, err := clerkfake.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Get("svix-id"))
	fmt.Println(h.Get("svix-timestamp"))
	fmt.Println(h.Get("svix-signature"))
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek
	// 1614265330
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// A seeded build is reproducible, and one seed is one user in every event.
func ExampleBuild() {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	created, _ := clerkfake.Build("user.created", clerkfake.Options{Seed: 1, Time: at})
	again, _ := clerkfake.Build("user.created", clerkfake.Options{Seed: 1, Time: at})
	fmt.Println(string(created) == string(again))

	_, err := clerkfake.Build("user.exploded", clerkfake.Options{})
	fmt.Println(err)
	// Output:
	// true
	// clerkfake: unknown Clerk event type "user.exploded" (the 46 valid types are listed in clerkfake.Types; types are case-sensitive, e.g. "organizationMembership.created")
}
