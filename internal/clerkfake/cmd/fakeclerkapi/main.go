// Command fakeclerkapi serves clerkfake.API, a fake of the part of
// Clerk's Backend API that `webhookd reconcile` reads, with -users
// realistic users, for measuring reconciliation without Clerk's rate
// limits:
//
//	go run ./internal/clerkfake/cmd/fakeclerkapi -users 100000 -orgs 2000 -memberships 50000 -addr 127.0.0.1:8787 &
//	CLERK_API_URL=http://127.0.0.1:8787 CLERK_SECRET_KEY=sk_test_x \
//	  WEBHOOKD_RECONCILE_BUDGET=-1 webhookd reconcile
//
// It prints "ready" on stdout once it listens.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/internal/clerkfake"
)

func main() {
	users := flag.Int("users", 100_000, "users to serve")
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	key := flag.String("key", "sk_test_x", "secret key requests must carry")
	orgs := flag.Int("orgs", 0, "organizations to serve")
	members := flag.Int("memberships", 0, "memberships to serve, spread evenly over the organizations")
	flag.Parse()
	api := clerkfake.NewAPI(*key)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := 1; n <= *users; n++ {
		created := base.Add(time.Duration(n) * time.Second)
		raw, err := clerkfake.APIUser(clerkfake.Options{Seed: int64(n), CreatedAt: created, Time: created.Add(time.Hour)})
		if err != nil {
			log.Fatal(err)
		}
		if err := api.Put(raw); err != nil {
			log.Fatal(err)
		}
	}
	for n := 1; n <= *orgs; n++ {
		created := base.Add(time.Duration(n) * time.Second)
		raw, err := clerkfake.APIOrganization(clerkfake.Options{Seed: int64(n), ID: fmt.Sprintf("org_%08d", n), CreatedAt: created, Time: created.Add(time.Hour)})
		if err != nil {
			log.Fatal(err)
		}
		if err := api.PutOrganization(raw); err != nil {
			log.Fatal(err)
		}
	}
	for m := 0; *orgs > 0 && m < *members; m++ {
		n := 1 + m%*orgs
		created := base.Add(time.Duration(m) * time.Second)
		raw, err := clerkfake.APIMembership(clerkfake.Options{Seed: int64(m), ID: fmt.Sprintf("orgmem_%08d", m), OrgID: fmt.Sprintf("org_%08d", n),
			UserID: fmt.Sprintf("user_%08d", m), CreatedAt: created, Time: created.Add(time.Hour)})
		if err != nil {
			log.Fatal(err)
		}
		if err := api.PutMembership(raw); err != nil {
			log.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready", *users, "users on", "http://"+l.Addr().String())
	log.Fatal(http.Serve(l, api))
}
