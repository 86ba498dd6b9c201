package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/projections"
	"github.com/webhookd/webhookd/reconcile"
)

func orgID(n int) string           { return fmt.Sprintf("org_recon%05d", n) }
func membershipID(n, m int) string { return fmt.Sprintf("orgmem_recon%05d_%04d", n, m) }

// org is organization n at version v (updated_at base + n minutes + v s).
func org(t testing.TB, n, v int) []byte {
	t.Helper()
	b, err := clerkfake.APIOrganization(clerkfake.Options{Seed: int64(n), ID: orgID(n),
		Time: base.Add(time.Duration(n)*time.Minute + time.Duration(v)*time.Second), CreatedAt: base.Add(time.Duration(n) * time.Minute)})
	require.NoError(t, err)
	return b
}

// membership is membership m of organization n at version v.
func membership(t testing.TB, n, m, v int) []byte {
	t.Helper()
	b, err := clerkfake.APIMembership(clerkfake.Options{Seed: int64(n*1000 + m), ID: membershipID(n, m), OrgID: orgID(n),
		UserID: fmt.Sprintf("user_recon%05d_%04d", n, m),
		Time:   base.Add(time.Duration(n)*time.Minute + time.Duration(m+v)*time.Second), CreatedAt: base.Add(time.Duration(n)*time.Minute + time.Duration(m)*time.Second)})
	require.NoError(t, err)
	return b
}

// addOrgs puts organizations from..to, each with perOrg memberships, at
// version 0 into the fake Clerk.
func (v *env) addOrgs(from, to, perOrg int) {
	for n := from; n <= to; n++ {
		require.NoError(v.t, v.api.PutOrganization(org(v.t, n, 0)))
		for m := 1; m <= perOrg; m++ {
			require.NoError(v.t, v.api.PutMembership(membership(v.t, n, m, 0)))
		}
	}
}

// projectAll applies the ledger to users, practices and memberships.
func (v *env) projectAll() {
	v.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := projections.NewRunner(projections.RunnerConfig{Pool: v.db.Pool,
		Projections: []projections.Projection{projections.Users, projections.Practices, projections.Memberships},
		Logger:      v.logger, PollInterval: 5 * time.Millisecond, BatchSize: 1000})
	require.NoError(v.t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(v.t, func() bool {
		for _, m := range []string{"practices", "memberships"} {
			lag, err := projections.MeasureLag(context.Background(), v.db.Pool, m, time.Now())
			if err != nil || lag.Events != 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 5*time.Millisecond)
}

type versioned struct {
	UpdatedAt time.Time
	Deleted   bool
}

// table returns a read model's rows by id: Clerk's updated_at and
// whether it is soft-deleted.
func (v *env) table(table, column string) map[string]versioned {
	v.t.Helper()
	rows, err := v.db.Pool.Query(context.Background(), `SELECT `+column+`, clerk_updated_at, deleted_at IS NOT NULL FROM `+table)
	require.NoError(v.t, err)
	out := map[string]versioned{}
	var id string
	var at *time.Time
	var deleted bool
	_, err = pgx.ForEachRow(rows, []any{&id, &at, &deleted}, func() error {
		r := versioned{Deleted: deleted}
		if at != nil {
			r.UpdatedAt = at.UTC()
		}
		out[id] = r
		return nil
	})
	require.NoError(v.t, err)
	return out
}

func active(rows map[string]versioned) map[string]time.Time {
	out := map[string]time.Time{}
	for id, r := range rows {
		if !r.Deleted {
			out[id] = r.UpdatedAt
		}
	}
	return out
}

// clerkOrgs and clerkMemberships are the fake Clerk's, by id and
// updated_at.
func (v *env) clerkOrgs() map[string]time.Time {
	out := map[string]time.Time{}
	for _, id := range v.api.OrganizationIDs() {
		o, err := domain.ParseSnapshotOrganization(v.api.Organization(id))
		require.NoError(v.t, err)
		out[id] = o.UpdatedAt.UTC()
	}
	return out
}

func (v *env) clerkMemberships() map[string]time.Time {
	out := map[string]time.Time{}
	for id, raw := range v.api.Memberships() {
		m, err := domain.ParseSnapshotMembership(raw)
		require.NoError(v.t, err)
		out[id] = m.UpdatedAt.UTC()
	}
	return out
}

// 1,200 organizations (three pages) with 600 memberships in one (two
// pages) and 2 in each other: all missing; then a second run appends
// nothing.
func TestManyOrganizationsAndMembershipsOverPagesThenNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addOrgs(1, 1200, 2)
	for m := 3; m <= 600; m++ {
		require.NoError(t, v.api.PutMembership(membership(t, 7, m, 0)))
	}
	sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, reconcile.Counts{Listed: 1200, Appended: 1200, Complete: true}, sum.Organizations)
	require.Equal(t, reconcile.Counts{Listed: 1200*2 + 598, Appended: 1200*2 + 598, Complete: true}, sum.Memberships)
	require.Equal(t, map[string]int64{reconcile.KindOrganizationMissing: 1200, reconcile.KindMembershipMissing: 2998}, sum.Found)
	// users: count and one page; organizations: 3 pages; memberships: one
	// page per organization and a second for the organization with 600.
	require.Equal(t, int64(2+3+1200+1), sum.Requests)
	v.projectAll()
	require.Equal(t, v.clerkOrgs(), active(v.table("practices", "clerk_org_id")))
	require.Equal(t, v.clerkMemberships(), active(v.table("memberships", "clerk_membership_id")))

	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, reconcile.Counts{Listed: 1200, Unchanged: 1200, Complete: true}, sum.Organizations)
	require.Equal(t, reconcile.Counts{Listed: 2998, Unchanged: 2998, Complete: true}, sum.Memberships)
	require.Empty(t, sum.Found)
	require.Equal(t, 1200+2998, v.ledgerCount(domain.SourceClerkAPI), "a second run appends nothing")
}

// The read models hold organizations 1..5 and their memberships (2 each)
// from a first run; then in Clerk: org 2 is newer, org 3 older than a
// webhook the table applied, org 4 deleted (with its memberships), org 6
// new; membership 1/1 newer, 1/2 removed, 5/3 added.
func TestMissingStaleNewerAndDeletedOrganizationsAndMemberships(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addOrgs(1, 5, 2)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	// A webhook newer than anything the API will say about org 3.
	v.deliver("organization.updated", org(t, 3, 30), base)
	v.projectAll()

	require.NoError(t, v.api.PutOrganization(org(t, 2, 10)))
	require.NoError(t, v.api.PutOrganization(org(t, 3, 20)))
	v.api.DeleteOrganization(orgID(4))
	v.addOrgs(6, 6, 1)
	require.NoError(t, v.api.PutMembership(membership(t, 1, 1, 10)))
	v.api.DeleteMembership(membershipID(1, 2))
	require.NoError(t, v.api.PutMembership(membership(t, 5, 3, 0)))

	before := v.ledgerCount(domain.SourceClerkAPI)
	sum, err := v.run(v.client(reconcile.ClientConfig{}), true)
	require.NoError(t, err)
	want := map[string]int64{reconcile.KindOrganizationStale: 1, reconcile.KindOrganizationMissing: 1, reconcile.KindOrganizationDeleted: 1,
		reconcile.KindMembershipStale: 1, reconcile.KindMembershipMissing: 2, reconcile.KindMembershipDeleted: 3}
	require.Equal(t, want, sum.Found)
	require.Equal(t, before, v.ledgerCount(domain.SourceClerkAPI), "a dry run appends nothing")

	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Equal(t, want, sum.Found)
	require.Equal(t, reconcile.Counts{Listed: 5, Appended: 3, Unchanged: 3, Deleted: 1, Complete: true}, sum.Organizations)
	require.Equal(t, reconcile.Counts{Listed: 9, Appended: 6, Unchanged: 6, Deleted: 3, Complete: true}, sum.Memberships)
	v.projectAll()
	practices := v.table("practices", "clerk_org_id")
	wantOrgs := v.clerkOrgs()
	wantOrgs[orgID(3)] = base.Add(3*time.Minute + 30*time.Second) // an older snapshot changes nothing
	require.Equal(t, wantOrgs, active(practices))
	require.True(t, practices[orgID(4)].Deleted)
	members := v.table("memberships", "clerk_membership_id")
	require.Equal(t, v.clerkMemberships(), active(members))
	for _, id := range []string{membershipID(1, 2), membershipID(4, 1), membershipID(4, 2)} {
		require.True(t, members[id].Deleted, id)
	}
	var reason string
	require.NoError(t, v.db.Pool.QueryRow(context.Background(), `SELECT convert_from(payload, 'UTF8')::jsonb #>> '{data,reason}' FROM ledger_events WHERE event_type = 'clerk.organizationMembership.not_found' AND subject_id = $1`, membershipID(1, 2)).Scan(&reason))
	require.Equal(t, domain.MembershipNotFoundReason, reason)

	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	require.Empty(t, sum.Found, "again: nothing to do")

	reports, err := projections.RebuildAll(context.Background(), projections.RebuildConfig{Pool: v.db.Pool, Logger: v.logger},
		[]projections.ReadModel{projections.Practices, projections.Memberships}, true)
	require.NoError(t, err)
	for _, r := range reports {
		require.True(t, r.Equal, "a rebuild from the ledger gives the live table: %+v", r)
	}
	require.NotContains(t, v.logs.String(), "@", "no member's email in the logs")
}

// A 5xx that outlasts the retries in one organization's membership
// listing infers no membership deletion for that organization; the
// others' absences are still acted on, and the run is incomplete.
func TestA5xxInOneOrganizationsMembershipsInfersNothingForIt(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addOrgs(1, 3, 2)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.projectAll()
	v.api.DeleteMembership(membershipID(2, 1))
	v.api.DeleteMembership(membershipID(3, 1))
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		if r.URL.Path == "/v1/organizations/"+orgID(2)+"/memberships" {
			return http.StatusBadGateway, nil
		}
		return 0, nil
	}
	sum, err := v.run(v.client(reconcile.ClientConfig{MaxAttempts: 2}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.False(t, sum.Memberships.Complete)
	require.True(t, sum.Organizations.Complete)
	require.Equal(t, int64(1), sum.Memberships.Errors)
	require.Equal(t, int64(1), sum.Memberships.Deleted, "org 3's, not org 2's")
	require.Contains(t, v.logs.String(), `"msg":"reconcile_listing_failed","object":"memberships","org_id":"`+orgID(2)+`","cause":"GET /v1/organizations/{id}/memberships answered 502 after 2 attempts"`)
	v.projectAll()
	members := v.table("memberships", "clerk_membership_id")
	require.False(t, members[membershipID(2, 1)].Deleted)
	require.True(t, members[membershipID(3, 1)].Deleted)
}

// A membership absent from its organization's listing that the check by
// user still finds (it moved while the listing ran) is not deleted; a
// 404 without Clerk's error code deletes nothing.
func TestAbsentMembershipFoundByUserIsNotDeleted(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addOrgs(1, 1, 2)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.projectAll()
	// The listing (no user_id) leaves membership 1/1 out.
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) { return 0, nil }
	srv := newFilteringServer(t, v, membershipID(1, 1))
	c, err := reconcile.NewClient(reconcile.ClientConfig{SecretKey: secretKey, APIURL: srv, Budget: -1})
	require.NoError(t, err)
	sum, err := v.run(c, false)
	require.NoError(t, err)
	require.Zero(t, sum.Memberships.Deleted)
	v.projectAll()
	require.False(t, v.table("memberships", "clerk_membership_id")[membershipID(1, 1)].Deleted)

	// Clerk's answer to the check is a bare 404: not "gone".
	v.api.DeleteMembership(membershipID(1, 2))
	v.api.Fault = func(r *http.Request, _ int64) (int, http.Header) {
		if r.URL.Query().Get("user_id") != "" {
			return http.StatusNotFound, nil
		}
		return 0, nil
	}
	sum, err = v.run(v.client(reconcile.ClientConfig{}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.Zero(t, sum.Memberships.Deleted)
	require.True(t, strings.Contains(v.logs.String(), `"cause":"GET /v1/organizations/{id}/memberships?user_id= answered 404 (fault)"`), v.logs.String())
}

// newFilteringServer serves v's fake API but leaves membership hidden out
// of the organization listings that are not filtered by user.
func newFilteringServer(t *testing.T, v *env, hidden string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/memberships") && r.URL.Query().Get("user_id") == "" {
			rec := httptest.NewRecorder()
			v.api.ServeHTTP(rec, r)
			var page struct {
				Data       []json.RawMessage `json:"data"`
				TotalCount int               `json:"total_count"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &page))
			kept := page.Data[:0]
			for _, m := range page.Data {
				if !strings.Contains(string(m), `"id":"`+hidden+`"`) {
					kept = append(kept, m)
				}
			}
			page.Data = kept
			_ = json.NewEncoder(w).Encode(page)
			return
		}
		v.api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// An organization object that does not parse makes the organization
// listing incomplete: no organization is deleted. A membership object
// that does not parse leaves its organization's memberships alone. The
// logs name positions and reasons, never the objects.
func TestUnreadableOrganizationsAndMembershipsInferNothing(t *testing.T) {
	t.Parallel()
	v := setup(t)
	v.addOrgs(1, 3, 2)
	_, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.NoError(t, err)
	v.projectAll()
	v.api.DeleteOrganization(orgID(3))
	v.api.DeleteMembership(membershipID(1, 1))
	v.api.DeleteMembership(membershipID(2, 1))
	// Organization 4 has no updated_at; membership 2/3 is not an object.
	require.NoError(t, v.api.PutOrganization([]byte(`{"object":"organization","id":"`+orgID(4)+`","name":"Acme"}`)))
	require.NoError(t, v.api.PutMembership([]byte(`{"id":"`+membershipID(2, 3)+`","object":"organization_membership","organization":{"id":"`+orgID(2)+`"},"role":7,"public_user_data":{"identifier":"someone@example.org"}}`)))

	sum, err := v.run(v.client(reconcile.ClientConfig{}), false)
	require.ErrorIs(t, err, reconcile.Incomplete)
	require.False(t, sum.Organizations.Complete)
	require.Zero(t, sum.Organizations.Deleted, "organization 3 is not deleted after an incomplete listing")
	require.False(t, sum.Memberships.Complete)
	require.Equal(t, int64(1), sum.Memberships.Deleted, "1/1 only: organization 2's listing had an unreadable membership")
	logs := v.logs.String()
	require.Contains(t, logs, `"msg":"reconcile_organization_unreadable","position":2,"reason":"not_clerk_organization"`)
	require.Contains(t, logs, `"msg":"reconcile_membership_unreadable"`)
	require.NotContains(t, logs, "someone@example.org")
	v.projectAll()
	require.False(t, v.table("practices", "clerk_org_id")[orgID(3)].Deleted)
	members := v.table("memberships", "clerk_membership_id")
	require.True(t, members[membershipID(1, 1)].Deleted)
	require.False(t, members[membershipID(2, 1)].Deleted)
}
