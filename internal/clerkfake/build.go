package clerkfake

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"
)

// DefaultInstanceID is the instance_id of events built without
// Options.InstanceID: one fixed Clerk instance, as a real endpoint sees (the
// id of the examples in Clerk's OpenAPI spec).
const DefaultInstanceID = "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S"

// Options shape one event. The zero value is valid: a random subject
// at time.Now().
type Options struct {
	// ID is the subject id, data.id. Default: a new realistic id with the
	// type's prefix (see IDPrefix), e.g. "user_" + 27 base62 characters.
	ID string
	// UserID is the user a session, email, SMS, membership, invitation or
	// billing event refers to (data.user_id, public_user_data.user_id, …).
	// For user events it is the subject id when ID is empty. Default: a
	// new user id (with Seed, the same one as the seed's user events).
	UserID string
	// OrgID is the organization of organization, domain, membership and
	// invitation events (for organization events it is the subject id when
	// ID is empty). Default: a new organization id.
	OrgID string
	// InstanceID is the envelope's instance_id. Default: DefaultInstanceID.
	InstanceID string
	// Time is Clerk's event time. It sets the envelope's "timestamp" (unix
	// milliseconds, as live events carry) and data.updated_at (ms), and
	// data.created_at for *.created events. Default: time.Now().
	Time time.Time
	// CreatedAt sets data.created_at for events that are not *.created.
	// Default: Time less a pseudo-random 1 hour to 400 days (to 6 days
	// for sessions, which expire after 7).
	CreatedAt time.Time
	// Seed, when non-zero, makes every generated value (ids, names,
	// emails, addresses, request attributes) a function of the seed, so
	// Build with equal Options returns equal bytes. Values are drawn per
	// subject, not per event type: with one Seed, user.created,
	// user.updated, session.created and organizationMembership.created
	// all describe the same user id, name and email addresses.
	// Zero: random on every call.
	Seed int64
	// Email sets the user's primary email address (the other generated
	// address is kept). FirstName and LastName set the user's names.
	// They apply to user payloads and to users embedded in other events.
	Email, FirstName, LastName string
	// PrimaryEmail chooses which of the user's two email_addresses is
	// primary: 1 the first, 2 the second, 0 either (about half each), so
	// that consumers cannot assume position 0.
	PrimaryEmail int
	// TimestampInSeconds writes the envelope's "timestamp" in unix
	// seconds, as the examples of Clerk's OpenAPI spec do, instead of the
	// milliseconds of live events. data.* timestamps stay milliseconds.
	TimestampInSeconds bool
}

// Build returns the JSON body of a Clerk webhook event of type eventType:
//
//	{"data":{…},"event_attributes":{"http_request":{"client_ip":…,"user_agent":…}},
//	 "instance_id":"ins_…","object":"event","timestamp":<unix ms>,"type":eventType}
//
// data follows the payload schema of @clerk/backend's JSON.d.ts for the
// type: UserJSON for user.created/updated (1.3 to 2 KB with the envelope),
// {"deleted":true,"id":…,"object":"user"} for user.deleted,
// SessionWebhookEventJSON with the embedded user for session.*, and so on. Keys are in sorted order, as in
// Clerk's documented example. Addresses are reserved documentation ones
// (example.com/org/net, 192.0.2.0/24, 2001:db8::/32, 555-01xx numbers).
//
// An eventType not in Types returns an error wrapping ErrUnknownType.
func Build(eventType string, o Options) ([]byte, error) {
	if !known[eventType] {
		return nil, unknownTypeError(eventType)
	}
	b := newBuilder(eventType, o)
	data := b.fam.build(b)
	r := b.rng("request")
	ipFormat := pick(r, clientIPs)
	ts := b.at.UnixMilli()
	if o.TimestampInSeconds {
		ts = b.at.Unix()
	}
	instance := o.InstanceID
	if instance == "" {
		instance = DefaultInstanceID
	}
	return json.Marshal(obj{
		"data": data,
		"event_attributes": obj{"http_request": obj{
			"client_ip":  fmt.Sprintf(ipFormat, 1+r.IntN(254)),
			"user_agent": pick(r, userAgents),
		}},
		"instance_id": instance,
		"object":      "event",
		"timestamp":   ts,
		"type":        eventType,
	})
}

// MustBuild is Build for tests and benchmarks: it panics on error.
func MustBuild(eventType string, o Options) []byte {
	body, err := Build(eventType, o)
	if err != nil {
		panic(err)
	}
	return body
}

// BuildData returns the event's data object alone, as a map ready to be
// changed and marshalled (for tests that need a field Options cannot set).
// With a Seed and a fixed Time it equals the data Build(eventType, o) wraps.
func BuildData(eventType string, o Options) (map[string]any, error) {
	if !known[eventType] {
		return nil, unknownTypeError(eventType)
	}
	b := newBuilder(eventType, o)
	return b.fam.build(b), nil
}

type obj = map[string]any

// builder holds what every payload function needs for one event.
type builder struct {
	typ, action string
	fam         family
	famName     string
	o           Options
	at          time.Time // event time
	ms          int64     // event time, unix ms
	seedAt      time.Time // time inside seeded ids
	createdAt   time.Time // subject's creation time, once drawn
	p           *person   // the user, once drawn
	ids         map[string]string
}

func newBuilder(eventType string, o Options) *builder {
	famName, action, _ := strings.Cut(eventType, ".")
	at := o.Time
	if at.IsZero() {
		at = time.Now()
	}
	b := &builder{
		typ: eventType, action: action, famName: famName, fam: families[famName],
		o: o, at: at, ms: at.UnixMilli(),
	}
	if o.Seed != 0 {
		// Seeded ids must not depend on Time, or user.created and
		// user.updated of one seed would name different users.
		r := b.rng("epoch")
		b.seedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(365*24*3600)) * time.Second)
	}
	return b
}

// rng returns the generator for one kind of value: a seeded stream per
// label, or the shared random one.
func (b *builder) rng(label string) *mrand.Rand {
	if b.o.Seed == 0 {
		return unseeded
	}
	return seededRand(b.o.Seed, label)
}

// newID returns a new id with prefix; with a Seed, the same label always
// gives the same id.
func (b *builder) newID(prefix, label string) string {
	if b.o.Seed == 0 {
		return prefix + ksuid(b.created(), unseeded)
	}
	return prefix + ksuid(b.seedAt, b.rng("id:"+label))
}

// token returns n base62 characters (for third-party ids like Stripe's).
func (b *builder) token(label string, n int) string {
	r := b.rng("token:" + label)
	out := make([]byte, n)
	for i := range out {
		out[i] = base62[r.IntN(len(base62))]
	}
	return string(out)
}

// once returns the memoized value of key, computing it with f the first
// time, so that an unseeded event names one user, one organization, …
func (b *builder) once(key string, f func() string) string {
	if v, ok := b.ids[key]; ok {
		return v
	}
	if b.ids == nil {
		b.ids = make(map[string]string, 4)
	}
	v := f()
	b.ids[key] = v
	return v
}

// subjectID is data.id.
func (b *builder) subjectID() string { return b.once("subject", b.subjectID1) }

func (b *builder) subjectID1() string {
	switch {
	case b.o.ID != "":
		return b.o.ID
	case b.famName == "user":
		return b.userID()
	case b.famName == "organization":
		return b.orgID()
	}
	return b.newID(b.fam.prefix, b.famName)
}

// userID is the user the event is about or refers to.
func (b *builder) userID() string { return b.once("user", b.userID1) }

func (b *builder) userID1() string {
	switch {
	case b.famName == "user" && b.o.ID != "":
		return b.o.ID
	case b.o.UserID != "":
		return b.o.UserID
	}
	return b.newID("user_", "user")
}

// orgID is the organization the event is about or refers to.
func (b *builder) orgID() string { return b.once("org", b.orgID1) }

func (b *builder) orgID1() string {
	switch {
	case b.famName == "organization" && b.o.ID != "":
		return b.o.ID
	case b.o.OrgID != "":
		return b.o.OrgID
	}
	return b.newID("org_", "organization")
}

// created is the subject's creation time, drawn once.
func (b *builder) created() time.Time {
	if b.createdAt.IsZero() {
		switch {
		case b.action == "created":
			b.createdAt = b.at
		case !b.o.CreatedAt.IsZero():
			b.createdAt = b.o.CreatedAt
		default:
			// Sessions expire after 7 days; other subjects live longer.
			maxAge := int64(400 * 24)
			if b.famName == "session" {
				maxAge = 6 * 24
			}
			r := b.rng("created:" + b.famName)
			b.createdAt = b.at.Add(-time.Hour - time.Duration(r.Int64N(maxAge))*time.Hour)
		}
	}
	return b.createdAt
}

// person returns the user behind the event, drawn once.
func (b *builder) person() person {
	if b.p == nil {
		idAt := b.seedAt
		if b.o.Seed == 0 {
			idAt = b.created()
		}
		p := newPerson(b.rng("person"), b.o, idAt)
		b.p = &p
	}
	return *b.p
}
