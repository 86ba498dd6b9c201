package domain_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/testdb"
)

// jsonbReading is what PostgreSQL's jsonb reads from a body: the facts the
// ledger records and the users projection takes.
type jsonbReading struct {
	Object, Type, InstanceID, SubjectID, FirstName, LastName, Email *string
}

// readWithJSONB asks PostgreSQL what body says, with the same operators an
// auditor's query uses.
func readWithJSONB(t *testing.T, pool *pgxpool.Pool, body []byte) jsonbReading {
	t.Helper()
	var r jsonbReading
	err := pool.QueryRow(context.Background(), `
		WITH b AS (SELECT $1::jsonb AS j)
		SELECT j->>'object', j->>'type', j->>'instance_id', j->'data'->>'id',
		       j->'data'->>'first_name', j->'data'->>'last_name',
		       (SELECT e->>'email_address' FROM jsonb_array_elements(j->'data'->'email_addresses') WITH ORDINALITY AS a(e, n)
		         WHERE e->>'id' = j->'data'->>'primary_email_address_id' ORDER BY n LIMIT 1)
		FROM b`, string(body)).Scan(&r.Object, &r.Type, &r.InstanceID, &r.SubjectID, &r.FirstName, &r.LastName, &r.Email)
	require.NoError(t, err, "%s", body)
	return r
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// requireReadAsJSONB checks that ParseEnvelope and ParseUserEvent read body
// as PostgreSQL's jsonb does: same event type, subject, instance, names and
// primary email.
func requireReadAsJSONB(t *testing.T, pool *pgxpool.Pool, body []byte) {
	t.Helper()
	want := readWithJSONB(t, pool, body)
	env, err := domain.ParseEnvelope(body)
	require.NoError(t, err, "%s", body)
	require.Equal(t, deref(want.Type), env.Type, "type of %s", body)
	require.Equal(t, deref(want.SubjectID), env.SubjectID, "data.id of %s", body)
	require.Equal(t, deref(want.InstanceID), env.InstanceID, "instance_id of %s", body)
	u, err := domain.ParseUserEvent(body)
	require.NoError(t, err, "%s", body)
	require.Equal(t, deref(want.SubjectID), u.ClerkID, "user id of %s", body)
	require.Equal(t, deref(want.FirstName), u.FirstName, "first_name of %s", body)
	require.Equal(t, deref(want.LastName), u.LastName, "last_name of %s", body)
	require.Equal(t, deref(want.Email), u.Email, "primary email of %s", body)
}

// TestParsersReadMembersAsJSONB holds the envelope and user parsers to
// PostgreSQL's jsonb on the bodies where encoding/json's struct decoding
// read otherwise: member names differing only by case (it matched them
// case-insensitively, and kept the last match), Unicode case folding,
// escaped names, and duplicated names (jsonb keeps the last).
func TestParsersReadMembersAsJSONB(t *testing.T) {
	t.Parallel()
	pool := testdb.NewEmpty(t).Pool
	const head = `"object":"event","instance_id":"ins_1","timestamp":1654012591835`
	for _, body := range []string{
		`{` + head + `,"type":"user.deleted","TYPE":"user.created","data":{"id":"user_a"}}`,
		`{` + head + `,"TYPE":"user.created","type":"user.deleted","data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.deleted","Type":"user.created","tYpE":"session.created","data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_victim","ID":"user_attacker"}}`,
		`{` + head + `,"type":"user.updated","data":{"ID":"user_attacker","id":"user_victim"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_victim","Id":"user_attacker","iD":"user_x"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a"},"Data":{"id":"user_b"}}`,
		`{` + head + `,"type":"user.updated","DATA":{"id":"user_b"},"data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_first","id":"user_last"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_first"},"data":{"id":"user_last"}}`,
		`{` + head + `,"type":"user.deleted","type":"user.updated","data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.updated","t\u0079pe":"user.deleted","data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","i\u0064":"user_b"}}`,
		`{"object":"event","instance_id":"ins_1","INSTANCE_ID":"ins_2","timestamp":1654012591835,"type":"user.updated","data":{"id":"user_a"}}`,
		`{"object":"event","inſtance_id":"ins_2","instance_id":"ins_1","timestamp":1654012591835,"type":"user.updated","data":{"id":"user_a"}}`,
		`{"Object":"x","object":"event",` + `"instance_id":"ins_1","timestamp":1654012591835,"type":"user.updated","data":{"id":"user_a"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","first_name":"Jane","First_Name":"Mallory"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","FIRST_NAME":"Mallory","first_name":"Jane","firſt_name":"Eve"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","first_name":"Jane","first_name":"Joan"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","last_name":"Doe","la\u0073t_name":"Roe"}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","primary_email_address_id":"idn_1","Primary_Email_Address_Id":"idn_2",` +
			`"email_addresses":[{"id":"idn_1","email_address":"a@example.com"},{"id":"idn_2","email_address":"b@example.com"}]}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","primary_email_address_id":"idn_1",` +
			`"email_addresses":[{"ID":"idn_1","id":"idn_9","email_address":"a@example.com"},{"id":"idn_1","Email_Address":"x@example.com","email_address":"b@example.com"}]}}`,
		`{` + head + `,"type":"user.updated","data":{"id":"user_a","primary_email_address_id":"idn_1",` +
			`"email_addresses":[{"id":"idn_1","email_address":"a@example.com","email_address":"b@example.com"}],"Email_Addresses":[]}}`,
	} {
		requireReadAsJSONB(t, pool, []byte(body))
	}
}

// TestParsersReadRandomCaseVariantsAsJSONB builds envelopes whose members
// are shadowed by randomly placed case variants, escaped spellings and
// duplicates with other values, and checks each against jsonb.
func TestParsersReadRandomCaseVariantsAsJSONB(t *testing.T) {
	t.Parallel()
	pool := testdb.NewEmpty(t).Pool
	rng := rand.New(rand.NewPCG(13, 2026))
	variant := func(name string) string {
		switch rng.IntN(4) {
		case 0:
			return strings.ToUpper(name)
		case 1:
			return strings.ToUpper(name[:1]) + name[1:]
		case 2:
			return name // an exact duplicate
		default:
			return fmt.Sprintf(`\u%04x`, name[0]) + name[1:] // the same name, escaped
		}
	}
	// members writes name: value, surrounded at random by shadows with
	// other values.
	members := func(pairs [][2]string, other func(name string) string) string {
		var parts []string
		for _, p := range pairs {
			var before, after []string
			for range rng.IntN(3) {
				shadow := fmt.Sprintf("%q:%s", variant(p[0]), other(p[0]))
				shadow = strings.ReplaceAll(shadow, `\\u`, `\u`)
				if rng.IntN(2) == 0 {
					before = append(before, shadow)
				} else {
					after = append(after, shadow)
				}
			}
			parts = append(parts, before...)
			parts = append(parts, fmt.Sprintf("%q:%s", p[0], p[1]))
			parts = append(parts, after...)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for i := range 300 {
		n := fmt.Sprint(i)
		data := members([][2]string{
			{"id", `"user_` + n + `"`},
			{"first_name", `"First` + n + `"`},
			{"last_name", `"Last` + n + `"`},
			{"primary_email_address_id", `"idn_1"`},
			{"email_addresses", `[{"id":"idn_0","email_address":"zero` + n + `@example.com"},{"id":"idn_1","email_address":"one` + n + `@example.com"}]`},
		}, func(name string) string {
			if name == "email_addresses" {
				return `[{"id":"idn_1","email_address":"shadow@example.com"}]`
			}
			return fmt.Sprintf(`"shadow_%d"`, rng.IntN(100))
		})
		body := members([][2]string{
			{"object", `"event"`},
			{"type", `"user.updated"`},
			{"instance_id", `"ins_` + n + `"`},
			{"timestamp", "1654012591835"},
			{"data", data},
		}, func(name string) string {
			switch name {
			case "type":
				return `"user.deleted"`
			case "timestamp":
				return "1654012591999"
			case "data":
				return `{"id":"user_shadow"}`
			case "object":
				return `"event"`
			}
			return `"ins_shadow"`
		})
		requireReadAsJSONB(t, pool, []byte(body))
	}
}

// TestUserTimesOutsideTheCalendar: a created_at or updated_at no database
// column or client can hold (after the year 9999, before the year 1, or
// beyond an int64) is read as absent, the event's time, so that the user
// still reaches the read model; every other time is kept.
func TestUserTimesOutsideTheCalendar(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 28, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ms   string
		want time.Time
	}{
		{"1654012591835", time.UnixMilli(1654012591835).UTC()},
		{"253402300799999", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{"253402300800000", at},
		{"99999999999999999", at},
		{"999999999999999999", at},
		{"9223372036854775807", at},
		{"9223372036854775808", at},
		{"123456789012345678901234567890", at},
		{"-5", time.UnixMilli(-5).UTC()},
		{"-62135596800000", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"-62135596800001", at},
		{"-9223372036854775809", at},
	} {
		data := []byte(`{"id":"user_1","created_at":` + tc.ms + `,"updated_at":` + tc.ms + `}`)
		u, err := domain.ParseUser(data, at)
		require.NoError(t, err, tc.ms)
		require.Equal(t, tc.want, u.UpdatedAt, tc.ms)
		require.Equal(t, tc.want, u.CreatedAt, tc.ms)
		body := []byte(`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":` + fmt.Sprint(at.UnixMilli()) + `,"data":` + string(data) + `}`)
		u, err = domain.ParseUserEvent(body)
		require.NoError(t, err, tc.ms)
		require.Equal(t, tc.want, u.UpdatedAt, tc.ms)
	}
	for _, bad := range []string{"1.5", "1e3", `"1654012591835"`, "true", "[]"} {
		_, err := domain.ParseUser([]byte(`{"id":"user_1","updated_at":`+bad+`}`), at)
		require.Equal(t, domain.Errorf(domain.EINVALID, "not_clerk_user", `data is not a Clerk user object: field "updated_at" must be an integer (unix milliseconds)`), err, bad)
	}
}

// TestEnvelopeTimestampAtTheEndOfTheCalendar: the last millisecond of the
// year 9999 is accepted, the next one refused as out of range.
func TestEnvelopeTimestampAtTheEndOfTheCalendar(t *testing.T) {
	t.Parallel()
	const tmpl = `{"object":"event","type":"user.updated","instance_id":"ins_1","data":{"id":"user_1"},"timestamp":%d}`
	env, err := domain.ParseEnvelope(fmt.Appendf(nil, tmpl, int64(253402300799999)))
	require.NoError(t, err)
	require.Equal(t, time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), env.Time)
	_, err = domain.ParseEnvelope(fmt.Appendf(nil, tmpl, int64(253402300800000)))
	require.Equal(t, "timestamp_out_of_range", domain.ErrorReason(err))
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}

// TestParseAccessChangeExactNames: webhookd's own access changes are read
// by exact names too.
func TestParseAccessChangeExactNames(t *testing.T) {
	t.Parallel()
	c, err := domain.ParseAccessChange([]byte(`{"id":"user_a","ID":"user_b","role":"ADMIN","Role":"OWNER","actor":"ops","role":"AUDITOR"}`))
	require.NoError(t, err)
	require.Equal(t, "user_a", c.ClerkID)
	require.Equal(t, "AUDITOR", *c.Role)
	require.Nil(t, c.PracticeID)
	_, err = domain.ParseAccessChange([]byte(`{"ID":"user_b","Role":"ADMIN","actor":"ops"}`))
	require.Equal(t, domain.Errorf(domain.EINVALID, "invalid_access_change", "a Clerk user id is required"), err)
}
