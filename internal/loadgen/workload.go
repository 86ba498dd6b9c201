// Package loadgen drives a real webhookd the way Clerk's Svix does: it
// builds realistic, signed Clerk user events over a user population, sends
// them over HTTP (at a fixed concurrency for a benchmark, or with Svix's
// retry-until-2xx behaviour for fault drills), runs webhookd itself as a
// child process, and measures what a user sees: throughput, latency, the
// time until an event is visible in the users table, and the database's
// own single-row insert ceiling on the same machine.
//
// Nothing here is mocked: every number comes from real HTTP requests to a
// real webhookd process writing to a real PostgreSQL.
package loadgen

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// Event is one unique delivery, built (and, for a benchmark, signed) before
// any timing starts.
type Event struct {
	// MsgID is the svix-id: unique per event, the same on every retry.
	MsgID string
	// Type is user.created, user.updated or user.deleted.
	Type string
	// UserID is data.id, the Clerk user id.
	UserID string
	// UpdatedAt is data.updated_at for a created or updated event, and
	// the event time (the deletion time the users projection records) for
	// a deleted one. Events of one user have strictly increasing times.
	UpdatedAt time.Time
	// Email is the primary email of a created or updated event.
	Email string
	// Body is the JSON body, about 1.5 KB for created and updated events.
	Body []byte
	// Header holds the Svix headers, when the workload was signed.
	Header http.Header
}

// Deleted reports whether e deletes its user.
func (e Event) Deleted() bool { return e.Type == domain.EventUserDeleted }

// WorkloadConfig shapes a workload.
type WorkloadConfig struct {
	// Events is how many events to build. Defaults to 20000.
	Events int
	// Users is the size of the user population. Defaults to 2000.
	Users int
	// DeleteShare is the probability that an event after the users'
	// creations deletes a live user. Defaults to 0.05.
	DeleteShare float64
	// Seed makes the mix and the payloads reproducible (svix-ids stay
	// unique per build). Defaults to 1.
	Seed uint64
	// Start is the Clerk time of the first event; event k happens k
	// milliseconds later. Defaults to time.Now().
	Start time.Time
}

func (c *WorkloadConfig) defaults() {
	if c.Events <= 0 {
		c.Events = 20000
	}
	if c.Users <= 0 {
		c.Users = 2000
	}
	if c.DeleteShare <= 0 {
		c.DeleteShare = 0.05
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = time.Now()
	}
}

// Generate builds the workload: the first min(Events, Users) events create
// one user each; the rest update a random live user or, with probability
// DeleteShare while more than half the population is live, delete one.
// A deleted user gets no further events, as in Clerk.
func Generate(cfg WorkloadConfig) ([]Event, error) {
	cfg.defaults()
	r := mrand.New(mrand.NewPCG(cfg.Seed, 0x6c6f616467656e))
	ids := make([]string, cfg.Users)
	for i := range ids {
		ids[i] = clerkfake.NewID("user_")
	}
	live := make([]int, 0, cfg.Users)
	version := make([]int, cfg.Users)
	events := make([]Event, 0, cfg.Events)
	for k := 0; k < cfg.Events; k++ {
		at := cfg.Start.Add(time.Duration(k) * time.Millisecond).Truncate(time.Millisecond)
		var u int
		typ := domain.EventUserUpdated
		switch {
		case k < cfg.Users:
			u, typ = k, domain.EventUserCreated
			live = append(live, u)
		case len(live) > cfg.Users/2 && r.Float64() < cfg.DeleteShare:
			i := r.IntN(len(live))
			u, typ = live[i], domain.EventUserDeleted
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		default:
			u = live[r.IntN(len(live))]
		}
		version[u]++
		e := Event{MsgID: clerkfake.NewMsgID(), Type: typ, UserID: ids[u], UpdatedAt: at}
		o := clerkfake.Options{ID: ids[u], Seed: int64(cfg.Seed)<<20 + int64(u) + 1, Time: at, PrimaryEmail: 1}
		if typ != domain.EventUserDeleted {
			e.Email = fmt.Sprintf("user%d.v%d@example.com", u, version[u])
			o.Email = e.Email
		}
		body, err := clerkfake.Build(typ, o)
		if err != nil {
			return nil, err
		}
		e.Body = body
		events = append(events, e)
	}
	return events, nil
}

// Sign sets every event's Svix headers, signed with secret at time at.
// Signatures stay valid for the receiver's tolerance (five minutes).
func Sign(events []Event, secret string, at time.Time) error {
	for i := range events {
		h, err := clerkfake.Sign(secret, events[i].MsgID, at, events[i].Body)
		if err != nil {
			return err
		}
		events[i].Header = h
	}
	return nil
}

// UserModel is the state in-order delivery gives one user in the users
// table.
type UserModel struct {
	ClerkID string
	// Email is the primary email of the user's latest profile.
	Email string
	// UpdatedAt is Clerk's updated_at of that profile (users.clerk_updated_at).
	UpdatedAt time.Time
	// Deleted is true when a user.deleted was sent; DeletedAt is its time.
	Deleted   bool
	DeletedAt time.Time
}

// Expect computes the users table that delivering events in order gives:
// per user, the latest profile by updated_at and whether it was deleted.
func Expect(events []Event) map[string]UserModel {
	users := map[string]UserModel{}
	for _, e := range events {
		m := users[e.UserID]
		m.ClerkID = e.UserID
		if e.Deleted() {
			if !m.Deleted || e.UpdatedAt.Before(m.DeletedAt) {
				m.Deleted, m.DeletedAt = true, e.UpdatedAt
			}
		} else if !e.UpdatedAt.Before(m.UpdatedAt) {
			m.Email, m.UpdatedAt = e.Email, e.UpdatedAt
		}
		users[e.UserID] = m
	}
	return users
}
