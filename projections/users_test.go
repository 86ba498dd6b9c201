package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
	"github.com/webhookd/webhookd/projections"
)

// quiet discards the runner's logs; WEBHOOKD_TEST_LOG=1 shows them.
var quiet = func() *slog.Logger {
	if os.Getenv("WEBHOOKD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}()

type env struct {
	t     *testing.T
	db    *testdb.DB
	store *eventstore.Store
	seq   int
}

func setup(t *testing.T) *env {
	t.Helper()
	db := testdb.New(t)
	s, err := eventstore.New(db.Pool, nil)
	require.NoError(t, err)
	return &env{t: t, db: db, store: s}
}

// event is one Clerk event to deliver: its type, subject and Clerk time.
type event struct {
	typ   string
	id    string
	at    time.Time
	first string
}

func (e event) body(t *testing.T) []byte {
	t.Helper()
	if e.typ == domain.EventUserAccessChanged {
		return accessBody(t, e.id, e.first, e.at)
	}
	b, err := clerkfake.Build(e.typ, clerkfake.Options{ID: e.id, Time: e.at, Seed: 7, FirstName: e.first, PrimaryEmail: 2,
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	return b
}

func accessBody(t *testing.T, clerkID, role string, at time.Time) []byte {
	t.Helper()
	data, err := json.Marshal(domain.AccessChange{ClerkID: clerkID, Role: &role, Actor: "test"})
	require.NoError(t, err)
	return []byte(fmt.Sprintf(`{"object":"event","type":%q,"instance_id":"webhookd","timestamp":%d,"data":%s}`,
		domain.EventUserAccessChanged, at.UnixMilli(), data))
}

// append puts e in the ledger as a new delivery.
func (v *env) append(e event) {
	v.t.Helper()
	v.seq++
	body := e.body(v.t)
	parsed, err := domain.ParseEnvelope(body)
	require.NoError(v.t, err)
	entry := domain.LedgerEntry{
		SvixID: fmt.Sprintf("msg_%d", v.seq), SvixTimestamp: e.at.Truncate(time.Second), Signature: "v1,test",
		Source: domain.SourceClerk, EventType: parsed.Type, SubjectID: parsed.SubjectID, InstanceID: parsed.InstanceID,
		EventTime: parsed.Time, TimestampUnit: parsed.TimestampUnit, ReceivedAt: time.Now(), Payload: body,
	}
	if e.typ == domain.EventUserAccessChanged {
		entry.Source, entry.SvixID, entry.Signature, entry.SvixTimestamp = domain.SourceWebhookd, fmt.Sprintf("whd_%d", v.seq), "", time.Time{}
	}
	_, err = v.store.Append(context.Background(), entry)
	require.NoError(v.t, err)
}

// run starts a runner and returns a function that waits until it has
// applied the whole ledger.
func (v *env) run(cfg projections.RunnerConfig) (wait func()) {
	v.t.Helper()
	if cfg.Pool == nil {
		cfg.Pool = v.db.Pool
	}
	if cfg.Projections == nil {
		cfg.Projections = []projections.Projection{projections.Users}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	r, err := projections.NewRunner(cfg)
	require.NoError(v.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	v.t.Cleanup(func() {
		cancel()
		require.NoError(v.t, <-done)
	})
	<-r.Running()
	return func() {
		v.t.Helper()
		for _, p := range cfg.Projections {
			require.Eventually(v.t, func() bool {
				lag, err := projections.MeasureLag(context.Background(), v.db.Pool, p.Name(), time.Now())
				require.NoError(v.t, err)
				return lag.Events == 0
			}, 30*time.Second, 10*time.Millisecond, "projection %s did not catch up", p.Name())
		}
	}
}

type userRow struct {
	ClerkID, Role                                          string
	Email, FirstName, LastName, Name, ImageURL, PracticeID *string
	CreatedAt, UpdatedAt, DeletedAt                        *time.Time
}

func (v *env) users() map[string]userRow {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT clerk_id, role, email, first_name, last_name, name, image_url, practice_id, created_at, updated_at, deleted_at FROM users`)
	require.NoError(v.t, err)
	out := map[string]userRow{}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[userRow]))(v.t) {
		out[r.ClerkID] = r
	}
	return out
}

func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T { t.Helper(); require.NoError(t, err); return v }
}

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func history(id string) []event {
	return []event{
		{domain.EventUserCreated, id, t0, "Ada"},
		{domain.EventUserUpdated, id, t0.Add(time.Minute), "Grace"},
		{domain.EventUserUpdated, id, t0.Add(2 * time.Minute), "Hedy"},
		{domain.EventUserDeleted, id, t0.Add(3 * time.Minute), ""},
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestEveryPermutationConverges(t *testing.T) {
	t.Parallel()
	v := setup(t)
	perms := permutations(4)
	require.Len(t, perms, 24)
	for i, p := range perms {
		h := history(fmt.Sprintf("user_perm%02d", i))
		for _, j := range p {
			v.append(h[j])
		}
	}
	// A history without the delete, to see the live profile too.
	for _, j := range []int{2, 0, 1} {
		v.append(history("user_alive")[j])
	}
	v.run(projections.RunnerConfig{})()

	users := v.users()
	require.Len(t, users, 25)
	want := users["user_perm00"]
	require.Equal(t, "Hedy", *want.FirstName, "the latest Clerk updated_at wins")
	require.NotNil(t, want.DeletedAt, "the user stays deleted")
	require.Equal(t, t0.Add(3*time.Minute), want.DeletedAt.UTC())
	require.Equal(t, "USER", want.Role)
	require.Nil(t, want.PracticeID)
	for i := range perms {
		got := users[fmt.Sprintf("user_perm%02d", i)]
		require.NotNil(t, got.ImageURL)
		// The fake draws the image URL per subject id.
		got.ClerkID, got.ImageURL = want.ClerkID, want.ImageURL
		require.Equal(t, want, got, "permutation %v", perms[i])
	}
	alive := users["user_alive"]
	require.Nil(t, alive.DeletedAt)
	require.Equal(t, "Hedy", *alive.FirstName)
	require.Equal(t, t0.Add(2*time.Minute), alive.UpdatedAt.UTC())
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), alive.CreatedAt.UTC())
	// Primary email is found by id: the fake puts the primary second.
	var data struct {
		Data struct {
			Primary string `json:"primary_email_address_id"`
			Emails  []struct {
				ID           string `json:"id"`
				EmailAddress string `json:"email_address"`
			} `json:"email_addresses"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(history("user_alive")[2].body(t), &data))
	require.Len(t, data.Data.Emails, 2)
	require.Equal(t, data.Data.Primary, data.Data.Emails[1].ID)
	require.Equal(t, data.Data.Emails[1].EmailAddress, *alive.Email)
	require.NotEqual(t, data.Data.Emails[0].EmailAddress, *alive.Email)
}

func TestDeleteBeforeCreateLeavesTombstone(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.append(event{domain.EventUserDeleted, "user_gone", t0.Add(time.Hour), ""})
	wait := v.run(projections.RunnerConfig{})
	wait()
	u := v.users()["user_gone"]
	require.NotNil(t, u.DeletedAt)
	require.Nil(t, u.Email, "a tombstone has no profile")

	v.append(event{domain.EventUserCreated, "user_gone", t0, "Late"})
	wait()
	u = v.users()["user_gone"]
	require.NotNil(t, u.DeletedAt, "a late create does not bring the user back")
	require.Equal(t, t0.Add(time.Hour), u.DeletedAt.UTC())
}

func TestRandomizedDeliveryConvergesToInOrderState(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(42, 4242))
	var inOrder []event
	for u := range 150 {
		id := fmt.Sprintf("user_rand%03d", u)
		at := t0.Add(time.Duration(u) * time.Second)
		inOrder = append(inOrder, event{domain.EventUserCreated, id, at, "C"})
		for k := range rng.IntN(4) {
			inOrder = append(inOrder, event{domain.EventUserUpdated, id, at.Add(time.Duration(k+1) * time.Minute), fmt.Sprintf("U%d", k)})
		}
		if rng.IntN(3) == 0 {
			inOrder = append(inOrder, event{domain.EventUserDeleted, id, at.Add(time.Hour), ""})
		}
	}
	shuffled := append([]event{}, inOrder...)
	for range len(inOrder) / 3 { // Clerk sends some events twice, under new svix-ids
		shuffled = append(shuffled, inOrder[rng.IntN(len(inOrder))])
	}
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	ordered, random := setup(t), setup(t)
	for _, e := range inOrder {
		ordered.append(e)
	}
	waitOrdered := ordered.run(projections.RunnerConfig{})
	// The shuffled ledger is applied while it is still being written.
	waitRandom := random.run(projections.RunnerConfig{BatchSize: 7})
	for _, e := range shuffled {
		random.append(e)
	}
	waitOrdered()
	waitRandom()
	want := ordered.users()
	require.Len(t, want, 150)
	require.Equal(t, want, random.users())
}

func TestAccessChangesAreOwnedByWebhookd(t *testing.T) {
	t.Parallel()
	v := setup(t)
	// The assignment may reach the ledger before Clerk's create.
	v.append(event{domain.EventUserAccessChanged, "user_doc", t0, "ADMIN"})
	v.append(event{domain.EventUserCreated, "user_doc", t0, "Ada"})
	v.append(event{domain.EventUserUpdated, "user_doc", t0.Add(time.Minute), "Ada"})
	v.run(projections.RunnerConfig{})()
	u := v.users()["user_doc"]
	require.Equal(t, "ADMIN", u.Role, "Clerk events never overwrite the role")
	require.Equal(t, "Ada", *u.FirstName)
	require.Nil(t, u.DeletedAt)
}

// counting records how often each ledger entry was applied, and fails on
// the first attempt of chosen offsets after it has written.
type counting struct {
	failFirst map[string]bool // svix ids
	poison    map[string]bool
	tried     map[string]int
}

func (c *counting) Name() string { return "counting" }

func (c *counting) Apply(ctx context.Context, tx pgx.Tx, e domain.LedgerEntry) error {
	if _, err := tx.Exec(ctx, `INSERT INTO applied (svix_id, n) VALUES ($1, 1) ON CONFLICT (svix_id) DO UPDATE SET n = applied.n + 1`, e.SvixID); err != nil {
		return err
	}
	if err := projections.Users.Apply(ctx, tx, e); err != nil {
		return err
	}
	c.tried[e.SvixID]++
	if c.poison[e.SvixID] || (c.failFirst[e.SvixID] && c.tried[e.SvixID] == 1) {
		return fmt.Errorf("handler crashed midway")
	}
	return nil
}

// createApplied makes the table counting writes to.
func (v *env) createApplied() {
	v.t.Helper()
	_, err := v.db.Pool.Exec(context.Background(), `CREATE TABLE applied (svix_id TEXT PRIMARY KEY, n INT NOT NULL)`)
	require.NoError(v.t, err)
}

func (v *env) appliedCounts() map[string]int {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT svix_id, n FROM applied`)
	require.NoError(v.t, err)
	out := map[string]int{}
	var id string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = n; return nil })
	require.NoError(v.t, err)
	return out
}

func TestFailingHandlerLeavesNoPartialWrite(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_crash")[:3] {
		v.append(e)
	}
	c := &counting{failFirst: map[string]bool{"msg_2": true}, tried: map[string]int{}}
	v.run(projections.RunnerConfig{Projections: []projections.Projection{c}, RetryInterval: time.Millisecond})()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_2": 1, "msg_3": 1}, v.appliedCounts(), "each event took effect once")
	require.Equal(t, 2, c.tried["msg_2"])
	require.Equal(t, "Hedy", *v.users()["user_crash"].FirstName)
}

func TestPoisonEventIsRecordedAndSkipped(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	for _, e := range history("user_poison")[:3] {
		v.append(e)
	}
	c := &counting{poison: map[string]bool{"msg_2": true}, tried: map[string]int{}}
	v.run(projections.RunnerConfig{Projections: []projections.Projection{c}, RetryInterval: time.Millisecond, MaxAttempts: 3})()

	require.Equal(t, map[string]int{"msg_1": 1, "msg_3": 1}, v.appliedCounts(), "the poison event left no write; later events went on")
	var (
		svixID, eventType, cause string
		attempts                 int
	)
	require.NoError(t, v.db.Pool.QueryRow(context.Background(),
		`SELECT svix_id, event_type, error, attempts FROM projection_failures WHERE projection = 'counting'`).
		Scan(&svixID, &eventType, &cause, &attempts))
	require.Equal(t, "msg_2", svixID)
	require.Equal(t, "user.updated", eventType)
	require.Equal(t, "handler crashed midway", cause)
	require.Equal(t, 3, attempts)
}

// twoRunnersUsers is how many users' histories twoRunners appends.
const twoRunnersUsers = 60

// twoRunners runs p1 and p2 as two runners of one consumer group, on two
// pools (as two webhookd processes would), with batches of 5, while it
// appends the histories of twoRunnersUsers users; it returns once both
// have applied the whole ledger, and checks that no entry took effect
// twice.
func (v *env) twoRunners(p1, p2 projections.Projection, cfg projections.RunnerConfig) map[string]int {
	v.t.Helper()
	cfg.BatchSize = 5
	cfg.Projections = []projections.Projection{p1}
	wait1 := v.run(cfg)
	cfg.Projections, cfg.Pool = []projections.Projection{p2}, testdb.Pool(v.t, v.db.URL)
	wait2 := v.run(cfg)
	for u := range twoRunnersUsers {
		for _, e := range history(fmt.Sprintf("user_two%02d", u)) {
			v.append(e)
		}
	}
	wait1()
	wait2()
	counts := v.appliedCounts()
	for id, n := range counts {
		require.Equal(v.t, 1, n, id)
	}
	require.Len(v.t, v.users(), twoRunnersUsers)
	return counts
}

// requireWholeHistory checks that id's row shows history(id) applied:
// the last profile and the deletion.
func (v *env) requireWholeHistory(id string) {
	v.t.Helper()
	u := v.users()[id]
	require.Equal(v.t, "Hedy", *u.FirstName)
	require.NotNil(v.t, u.DeletedAt)
}

func TestTwoRunnersApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.createApplied()
	c1 := &counting{tried: map[string]int{}}
	c2 := &counting{tried: map[string]int{}}
	counts := v.twoRunners(c1, c2, projections.RunnerConfig{})
	require.Len(t, counts, twoRunnersUsers*4)
	require.Len(t, c1.tried, twoRunnersUsers*4-len(c2.tried), "each event went to one runner")
}
