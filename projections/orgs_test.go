package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/projections"
)

// orgEvent is an organization or membership event: id is the subject
// (org_… or orgmem_…), org and user what a membership refers to, value the
// organization's name or the membership's role.
type orgEvent struct {
	typ, id, org, user string
	at                 time.Time
	value              string
}

func (e orgEvent) body(t *testing.T) string {
	t.Helper()
	raw, err := clerkfake.Build(e.typ, clerkfake.Options{ID: e.id, OrgID: e.org, UserID: e.user, Time: e.at, Seed: 11,
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	if e.value == "" {
		return string(raw)
	}
	var env map[string]any
	require.NoError(t, json.Unmarshal(raw, &env))
	data := env["data"].(map[string]any)
	if strings.HasPrefix(e.typ, "organizationMembership.") {
		data["role"] = e.value
	} else {
		data["name"], data["slug"] = e.value, strings.ToLower(e.value)
	}
	out, err := json.Marshal(env)
	require.NoError(t, err)
	return string(out)
}

func orgHistory(id string) []orgEvent {
	return []orgEvent{
		{domain.EventOrganizationCreated, id, "", "", t0, "Ada Dental"},
		{domain.EventOrganizationUpdated, id, "", "", t0.Add(time.Minute), "Grace Clinic"},
		{domain.EventOrganizationUpdated, id, "", "", t0.Add(2 * time.Minute), "Hedy Care"},
		{domain.EventOrganizationDeleted, id, "", "", t0.Add(3 * time.Minute), ""},
	}
}

func membershipHistory(id, org, user string) []orgEvent {
	return []orgEvent{
		{domain.EventMembershipCreated, id, org, user, t0, "org:member"},
		{domain.EventMembershipUpdated, id, org, user, t0.Add(time.Minute), "org:admin"},
		{domain.EventMembershipUpdated, id, org, user, t0.Add(2 * time.Minute), "org:billing"},
		{domain.EventMembershipDeleted, id, org, user, t0.Add(3 * time.Minute), "org:billing"},
	}
}

// rowsOf reads a table as maps by its key, without the key and without
// last_offset (which names the ledger entry, different in every ledger).
func (v *env) rowsOf(table, key string) map[string]map[string]any {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT * FROM `+table)
	require.NoError(v.t, err)
	all, err := pgx.CollectRows(rows, pgx.RowToMap)
	require.NoError(v.t, err)
	out := map[string]map[string]any{}
	for _, r := range all {
		k := r[key].(string)
		delete(r, key)
		delete(r, "last_offset")
		out[k] = r
	}
	return out
}

func TestPracticesAndMembershipsEveryPermutationConverges(t *testing.T) {
	t.Parallel()
	v := setup(t)
	perms := permutations(4)
	for i, p := range perms {
		orgs := orgHistory(fmt.Sprintf("org_perm%02d", i))
		mems := membershipHistory(fmt.Sprintf("orgmem_perm%02d", i), "org_perm00", "user_perm")
		for _, j := range p {
			v.appendBody(orgs[j].body(t))
			v.appendBody(mems[j].body(t))
		}
	}
	// Histories without the deletion, to see the live rows too.
	for _, j := range []int{2, 0, 1} {
		v.appendBody(orgHistory("org_alive")[j].body(t))
		v.appendBody(membershipHistory("orgmem_alive", "org_alive", "user_alive")[j].body(t))
	}
	v.run(projections.RunnerConfig{Projections: projections.Projections()})()

	practices := v.rowsOf("practices", "clerk_org_id")
	require.Len(t, practices, 25)
	want := practices["org_perm00"]
	require.Equal(t, "Hedy Care", want["name"], "the latest Clerk updated_at wins")
	require.Equal(t, "hedy care", want["slug"])
	require.Equal(t, t0.Add(3*time.Minute), want["deleted_at"].(time.Time).UTC(), "the practice stays deleted")
	for i := range perms {
		got := practices[fmt.Sprintf("org_perm%02d", i)]
		require.NotEmpty(t, got["image_url"])
		got["image_url"] = want["image_url"] // the fake draws it per organization id
		require.Equal(t, want, got, "practices, permutation %v", perms[i])
	}
	alive := practices["org_alive"]
	require.Nil(t, alive["deleted_at"])
	require.Equal(t, "Hedy Care", alive["name"])
	require.Equal(t, t0.Add(2*time.Minute), alive["updated_at"].(time.Time).UTC())
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), alive["created_at"].(time.Time).UTC())

	memberships := v.rowsOf("memberships", "clerk_membership_id")
	require.Len(t, memberships, 25)
	wantM := memberships["orgmem_perm00"]
	require.Equal(t, map[string]any{"clerk_org_id": "org_perm00", "clerk_user_id": "user_perm", "role": "org:billing",
		"created_at": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "updated_at": t0.Add(3 * time.Minute),
		"deleted_at": t0.Add(3 * time.Minute), "clerk_updated_at": t0.Add(3 * time.Minute)}, utcTimes(wantM))
	for i := range perms {
		require.Equal(t, wantM, memberships[fmt.Sprintf("orgmem_perm%02d", i)], "memberships, permutation %v", perms[i])
	}
	aliveM := utcTimes(memberships["orgmem_alive"])
	require.Nil(t, aliveM["deleted_at"])
	require.Equal(t, "org:billing", aliveM["role"])
	require.Equal(t, "org_alive", aliveM["clerk_org_id"])
}

func utcTimes(row map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range row {
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC()
		}
		out[k] = v
	}
	return out
}

// A deletion that arrives first leaves a tombstone; a late create fills
// it in but never revives it.
func TestOrganizationDeleteBeforeCreateLeavesTombstone(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.appendBody(orgHistory("org_gone")[3].body(t))
	v.appendBody(membershipHistory("orgmem_gone", "org_gone", "user_x")[3].body(t))
	wait := v.run(projections.RunnerConfig{Projections: projections.Projections()})
	wait()
	p := v.rowsOf("practices", "clerk_org_id")["org_gone"]
	require.NotNil(t, p["deleted_at"])
	require.Nil(t, p["name"], "a tombstone has no profile")

	v.appendBody(orgHistory("org_gone")[0].body(t))
	v.appendBody(membershipHistory("orgmem_gone", "org_gone", "user_x")[0].body(t))
	wait()
	p = v.rowsOf("practices", "clerk_org_id")["org_gone"]
	require.Equal(t, t0.Add(3*time.Minute), p["deleted_at"].(time.Time).UTC(), "a late create does not bring the practice back")
	require.Equal(t, "Ada Dental", p["name"])
	m := v.rowsOf("memberships", "clerk_membership_id")["orgmem_gone"]
	require.Equal(t, t0.Add(3*time.Minute), m["deleted_at"].(time.Time).UTC())
	require.Equal(t, "org:billing", m["role"], "the deletion carries the newer membership")
}

// orgLedger is a long history over orgs organizations and their
// memberships (and users, whose events the two projections skip), in
// Clerk's order.
func orgLedger(rng *rand.Rand, orgs int) []orgEvent {
	var out []orgEvent
	for o := range orgs {
		org := fmt.Sprintf("org_rand%03d", o)
		at := t0.Add(time.Duration(o) * time.Second)
		out = append(out, orgEvent{domain.EventOrganizationCreated, org, "", "", at, "Created"})
		for k := range rng.IntN(4) {
			out = append(out, orgEvent{domain.EventOrganizationUpdated, org, "", "", at.Add(time.Duration(k+1) * time.Minute), fmt.Sprintf("Renamed%d", k)})
		}
		for m := range rng.IntN(4) {
			id, user := fmt.Sprintf("orgmem_rand%03d_%d", o, m), fmt.Sprintf("user_rand%03d_%d", o, m)
			out = append(out, orgEvent{domain.EventMembershipCreated, id, org, user, at, "org:member"})
			for k := range rng.IntN(3) {
				out = append(out, orgEvent{domain.EventMembershipUpdated, id, org, user, at.Add(time.Duration(k+1) * time.Minute), []string{"org:admin", "org:member", "org:billing"}[rng.IntN(3)]})
			}
			if rng.IntN(3) == 0 {
				out = append(out, orgEvent{domain.EventMembershipDeleted, id, org, user, at.Add(time.Hour), ""})
			}
			out = append(out, orgEvent{domain.EventUserCreated, user, "", "", at, ""})
		}
		if rng.IntN(4) == 0 {
			out = append(out, orgEvent{domain.EventOrganizationDeleted, org, "", "", at.Add(2 * time.Hour), ""})
		}
	}
	return out
}

func TestShuffledOrganizationsWithDuplicatesConvergeToInOrderState(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 1515))
	inOrder := orgLedger(rng, 80)
	shuffled := append([]orgEvent{}, inOrder...)
	for range len(inOrder) / 3 { // Clerk sends some events twice, under new svix-ids
		shuffled = append(shuffled, inOrder[rng.IntN(len(inOrder))])
	}
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	ordered, random := setup(t), setup(t)
	for _, e := range inOrder {
		ordered.appendBody(e.body(t))
	}
	waitOrdered := ordered.run(projections.RunnerConfig{Projections: projections.Projections()})
	// The shuffled ledger is applied while it is still being written.
	waitRandom := random.run(projections.RunnerConfig{Projections: projections.Projections(), BatchSize: 7})
	for _, e := range shuffled {
		random.appendBody(e.body(t))
	}
	waitOrdered()
	waitRandom()
	wantP, wantM := ordered.rowsOf("practices", "clerk_org_id"), ordered.rowsOf("memberships", "clerk_membership_id")
	require.Len(t, wantP, 80)
	require.Greater(t, len(wantM), 80)
	require.Equal(t, wantP, random.rowsOf("practices", "clerk_org_id"))
	require.Equal(t, wantM, random.rowsOf("memberships", "clerk_membership_id"))
}

// A rebuild of every read model equals the live projections; drift planted
// in any one table is reported for that table alone, and a rebuild repairs
// it.
func TestRebuildAllEqualsLiveAndFindsDriftInAnyTable(t *testing.T) {
	t.Parallel()
	v := setup(t)
	randomHistory(v, 3, 40)
	for _, e := range orgLedger(rand.New(rand.NewPCG(3, 3)), 30) {
		v.appendBody(e.body(t))
	}
	v.run(projections.RunnerConfig{Projections: projections.Projections()})()
	ctx := context.Background()
	cfg := projections.RebuildConfig{Pool: v.db.Pool, Logger: quiet, BatchSize: 64}

	reports, err := projections.RebuildAll(ctx, cfg, projections.All(), true)
	require.NoError(t, err)
	require.Len(t, reports, 3)
	for _, r := range reports {
		require.True(t, r.Equal, "%+v", r)
		require.Positive(t, r.Rows, r.Projection)
	}
	for _, drift := range []struct{ table, key, sql string }{
		{"users", "user_hist001_3", `UPDATE users SET role = 'DRIFT' WHERE clerk_id = 'user_hist001_3'`},
		{"practices", "org_rand004", `UPDATE practices SET name = 'Drift' WHERE clerk_org_id = 'org_rand004'`},
		{"memberships", "orgmem_planted", `INSERT INTO memberships (clerk_membership_id, last_offset) VALUES ('orgmem_planted', 0)`},
	} {
		_, err := v.db.Pool.Exec(ctx, drift.sql)
		require.NoError(t, err)
		reports, err = projections.RebuildAll(ctx, cfg, projections.All(), true)
		require.NoError(t, err)
		for _, r := range reports {
			if r.Projection == drift.table {
				require.False(t, r.Equal, drift.table)
				require.Equal(t, []string{drift.key}, r.Differing)
			} else {
				require.True(t, r.Equal, "%s is not where the drift is: %+v", r.Projection, r)
			}
		}
		m, err := projections.ByName(drift.table)
		require.NoError(t, err)
		report, err := projections.Rebuild(ctx, cfg, m, false)
		require.NoError(t, err)
		require.True(t, report.Swapped)
	}
	reports, err = projections.RebuildAll(ctx, cfg, projections.All(), true)
	require.NoError(t, err)
	for _, r := range reports {
		require.True(t, r.Equal, "after the rebuilds: %+v", r)
	}
}
