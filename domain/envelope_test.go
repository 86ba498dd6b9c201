package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/internal/fixtures"
)

func TestParseEnvelopeFixtures(t *testing.T) {
	t.Parallel()
	types := fixtures.ClerkEventTypes()
	require.Len(t, types, 5)
	for _, typ := range types {
		env, err := domain.ParseEnvelope(fixtures.ClerkEvent(typ))
		require.NoError(t, err, typ)
		require.Equal(t, typ, env.Type)
		require.NotEmpty(t, env.SubjectID)
		require.NotEmpty(t, env.InstanceID)
	}
}

func TestParseEnvelopeTimestampUnits(t *testing.T) {
	t.Parallel()
	const tmpl = `{"object":"event","type":"user.updated","instance_id":"ins_1","data":{"id":"user_1"},"timestamp":`
	env, err := domain.ParseEnvelope([]byte(tmpl + `1654012591835}`))
	require.NoError(t, err)
	require.Equal(t, domain.UnitMilliseconds, env.TimestampUnit)
	require.Equal(t, time.Date(2022, 5, 31, 15, 56, 31, 835e6, time.UTC), env.Time)

	env, err = domain.ParseEnvelope([]byte(tmpl + `1716883200}`))
	require.NoError(t, err)
	require.Equal(t, domain.UnitSeconds, env.TimestampUnit)
	require.Equal(t, time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC), env.Time)

	for _, bad := range []string{`-5}`, `0}`, `1.5}`, `null}`, `"1716883200"}`} {
		_, err := domain.ParseEnvelope([]byte(tmpl + bad))
		require.Error(t, err, bad)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	}
}

func TestParseEnvelopeErrorsDoNotQuoteValues(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"object":"event","type":"jane.doe@example.com","instance_id":"ins_1","timestamp":1,"data":{"id":"u"}}`,
		`{"object":"jane.doe@example.com"}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":{"id":"jane\u0000doe"}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":{"id":["jane.doe@example.com"]}}`,
		`{"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1,"data":"jane.doe@example.com"}`,
		`{"first_name": "Jane", "email": jane.doe@example.com}`,
	} {
		_, err := domain.ParseEnvelope([]byte(body))
		require.Error(t, err, body)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
		require.NotContains(t, err.Error(), "jane", body)
		require.NotContains(t, err.Error(), "Jane", body)
	}
}

func TestParseEnvelopeDataIsACopy(t *testing.T) {
	t.Parallel()
	body := []byte(`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"},"event_attributes":{"a":1}}`)
	env, err := domain.ParseEnvelope(body)
	require.NoError(t, err)
	for i := range body {
		body[i] = 'x'
	}
	require.Equal(t, `{"id":"user_1"}`, string(env.Data))
	require.Equal(t, `{"a":1}`, string(env.EventAttributes))
}

func TestParseEnvelopeMessages(t *testing.T) {
	t.Parallel()
	const head = `{"object":"event","type":"user.created","instance_id":"ins_1",`
	for _, tc := range []struct{ body, reason, message string }{
		{`{"type":"user.created",`, "body_not_json", "body is not valid JSON (syntax error at byte 23)"},
		{`not json at all`, "body_not_json", "body is not valid JSON (syntax error at byte 2)"},
		{``, "body_not_json", "body is not valid JSON (syntax error at byte 0)"},
		{`{"object":"event"} x`, "body_not_json", "body is not valid JSON (syntax error at byte 20)"},
		{`[1,2,3]`, "not_clerk_event", "body is JSON but not an object: a Clerk event is a JSON object"},
		{`null`, "not_clerk_event", `not a Clerk event: "object" must be "event"`},
		{`{"hello":"world"}`, "not_clerk_event", `not a Clerk event: "object" must be "event"`},
		{`{"object":"event","type":5}`, "not_clerk_event", `not a Clerk event: "type" must be a string`},
		{`{"object":"Event","type":5}`, "not_clerk_event", `not a Clerk event: "type" must be a string`},
		// Member names are exact, as in jsonb: "OBJECT" is not "object".
		{`{"OBJECT":"event","Type":"user.created","instance_id":"ins_1","timestamp":1654012591835,"data":{"ID":5}}`, "not_clerk_event", `not a Clerk event: "object" must be "event"`},
		{head + `"timestamp":1654012591835,"data":{"ID":"user_1"}}`, "not_clerk_event", `not a Clerk event: "data.id" must be a non-empty string`},
		{head + `"timestamp":1654012591835,"Data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "data" must be an object`},
		{head + `"TimeStamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" is required`},
		{head + `"timestamp":99999999999999999,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{head + `"timestamp":253402300800000,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{head + `"timestamp":9223372036854775808,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{head + `"timestamp":123456789012345678901234567890,"data":{"id":"user_1"}}`, "timestamp_out_of_range", `not a Clerk event: "timestamp" is after the year 9999 (at most 253402300799999 unix milliseconds)`},
		{head + `"timestamp":-9223372036854775809,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" must be a positive integer (unix milliseconds)`},
		{head + `"timestamp":1654012591835,"data":{}}`, "not_clerk_event", `not a Clerk event: "data.id" must be a non-empty string`},
		{head + `"timestamp":1654012591835,"data":{"id":"user_1","id":null}}`, "not_clerk_event", `not a Clerk event: "data.id" must be a non-empty string`},
		{head + `"timestamp":1654012591835,"data":[{"id":"user_1"}]}`, "not_clerk_event", `not a Clerk event: "data" must be an object`},
		{head + `"timestamp":1654012591835,"data":{"id":"user\u0000"}}`, "not_clerk_event", `not a Clerk event: "data.id" holds control characters or invalid UTF-8`},
		{head + `"timestamp":1654012591835,"data":{"id":"user_1"},"event_attributes":[]}`, "not_clerk_event", `not a Clerk event: "event_attributes" must be an object when present`},
		{`{"object":"event","type":"user created","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "type" must look like "user.created"`},
		{`{"object":"event","type":"user.created","timestamp":1654012591835,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "instance_id" is required`},
		{head + `"timestamp":"soon","data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" must be a number (unix milliseconds)`},
		{head + `"timestamp":1e12,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" must be a positive integer (unix milliseconds)`},
		{head + `"timestamp":null,"data":{"id":"user_1"}}`, "not_clerk_event", `not a Clerk event: "timestamp" is required`},
	} {
		_, err := domain.ParseEnvelope([]byte(tc.body))
		require.Equal(t, domain.Errorf(domain.EINVALID, tc.reason, "%s", tc.message), err, tc.body)
	}
}

// TestParseEnvelopeMatchesReference checks ParseEnvelope, ParseUser and
// ParseUserEvent against the reference readers, on the bodies where a
// JSON reading is least obvious: duplicated and
// case-folded member names, escapes, nulls, edge numbers, odd spacing.
// FuzzParsersMatchReference explores further from these.
func TestParseEnvelopeMatchesReference(t *testing.T) {
	t.Parallel()
	for _, body := range referenceCases() {
		requireSameAsReference(t, []byte(body))
	}
	types := fixtures.ClerkEventTypes()
	require.Len(t, types, 5)
	for _, typ := range types {
		requireSameAsReference(t, fixtures.ClerkEvent(typ))
	}
}

// referenceCases are envelope bodies and user objects (each also wrapped in
// an envelope) for TestParseEnvelopeMatchesReference and the fuzzer's seed.
func referenceCases() []string {
	const ok = `"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835`
	envelopes := []string{
		``, ` `, `null`, `true`, `1`, `"x"`, `[]`, `{}`, `{`, `{"object":"event"} x`, "\ufeff{}",
		`{` + ok + `,"data":{"id":"user_1"}}`,
		" \r\n\t{ \"object\" : \"event\" , \"type\" :\"user.updated\",\n\"instance_id\":\"ins_1\" ,\"timestamp\": 1654012591835 ,\"data\" : { \"id\" : \"user_1\" } , \"event_attributes\" : null } \n",
		`{` + ok + `,"data":{"id":"user_1"},"event_attributes":{"http_request":{"client_ip":"192.0.2.1"}}}`,
		`{` + ok + `,"data":{"id":"user_1"},"event_attributes":[]}`,
		`{` + ok + `,"data":{"id":"user_1"},"event_attributes":"x"}`,
		`{` + ok + `,"data":{"id":"user_1"},"event_attributes":0}`,
		`{` + ok + `,"data":{"id":"user_1"},"event_attributes":{},"event_attributes":false}`,
		`{` + ok + `,"data":{"id":"user_1"},"Event_Attributes":[]}`,
		`{` + ok + `,"data":null}`, `{` + ok + `,"data":"user_1"}`, `{` + ok + `,"data":[]}`, `{` + ok + `,"data":{}}`, `{` + ok + `}`,
		`{` + ok + `,"data":{"id":null}}`, `{` + ok + `,"data":{"id":""}}`, `{` + ok + `,"data":{"id":1}}`, `{` + ok + `,"data":{"id":["user_1"]}}`,
		`{` + ok + `,"data":{"id":"user_1","id":"user_2"}}`, `{` + ok + `,"data":{"id":"user_1","ID":"user_2"}}`, `{` + ok + `,"data":{"Id":"user_2"}}`,
		`{` + ok + `,"data":{"i\u0064":"user_2"}}`, `{` + ok + `,"data":{"x":{"id":"user_2"}}}`, `{` + ok + `,"data":{"id":"user_1","id":null}}`,
		`{` + ok + `,"data":{"id":"user_1"},"data":{"id":"user_2"}}`, `{` + ok + `,"data":{"id":"user_1"},"DATA":{"id":"user_2"}}`, `{` + ok + `,"data":{"id":"user_1"},"data":null}`,
		`{` + ok + `,"data":{"id":"user\/1"}}`, `{` + ok + `,"data":{"id":"user\u00e9"}}`, `{` + ok + `,"data":{"id":"usér"}}`,
		`{` + ok + `,"data":{"id":"user\u0000"}}`, `{` + ok + `,"data":{"id":"user\u001f"}}`, `{` + ok + `,"data":{"id":"user` + "\x7f" + `"}}`,
		`{` + ok + `,"data":{"id":"user` + "\xff" + `"}}`, `{` + ok + `,"data":{"id":"user\ufffd"}}`, `{` + ok + `,"data":{"id":"user` + "\xef\xbf\xbd" + `"}}`,
		`{` + ok + `,"data":{"id":"user\ud800"}}`, `{` + ok + `,"data":{"id":"user\ud83d\ude00"}}`, `{` + ok + `,"data":{"id":"user\\"}}`, `{` + ok + `,"data":{"id":"\"\\\""}}`,
		`{` + ok + `,"data":{"id":"` + strings.Repeat("u", 255) + `"}}`, `{` + ok + `,"data":{"id":"` + strings.Repeat("u", 256) + `"}}`,
		`{` + ok + `,"data":{"id":"user_1","deep":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}}`,
		`{` + ok + `,"data":{"id":"user_1","deep":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
		`{` + ok + `,"data":{"id":"user_1","n":-0.5e-3,"t":true,"f":false,"z":null,"s":"}]\"{[","a":[1,{"b":[]},"c"]}}`,
		`{"object":"event","object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":5,"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","object":null,"type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"Object":"event","TYPE":"user.updated","Instance_ID":"ins_1","TimeStamp":1654012591835,"Data":{"id":"user_1"}}`,
		`{"\u006fbject":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","inſtance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins_1","time\u017ftamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins_1","inſtance_id":"ins_2","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins_1","in\u017ftance_id":"ins\u0000","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","\u006fbject":"x","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"x","\u006fbject":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1","i\u0064":"user_2"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"},"d\u0061ta":{"id":"user_2"}}`,
		`{"object":"\u0065vent","type":"user.\u0075pdated","instance_id":"ins\u005f1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event ","type":"user.updated","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":null,"instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"a.` + strings.Repeat("b", 98) + `","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"a.` + strings.Repeat("b", 99) + `","instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":["user.updated"],"instance_id":"ins_1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":null,"timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":{},"timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins` + "\t" + `1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
		`{"object":"event","type":"user.updated","instance_id":"ins\t1","timestamp":1654012591835,"data":{"id":"user_1"}}`,
	}
	for _, ts := range []string{`0`, `-0`, `-1`, `1`, `1.0`, `1.5`, `1e3`, `1E3`, `99999999999`, `100000000000`, `999999999999999999`, `1000000000000000000`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `123456789012345678901234567890`, `1e400`, `"1"`, `null`, `true`, `[]`, `{}`} {
		envelopes = append(envelopes,
			`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":`+ts+`,"data":{"id":"user_1"}}`,
			`{"object":"event","type":"user.updated","instance_id":"ins_1","timestamp":1,"timestamp":`+ts+`,"data":{"id":"user_1"}}`)
	}
	users := []string{
		`{"id":"user_1"}`, `{"id":"user_1","first_name":"Jane","last_name":"Doe","image_url":"https://img.example.com/a?b=1\u0026c=2"}`,
		`{"id":"user_1","first_name":" José ","last_name":"Müller\ud83d\ude00"}`, `{"id":"user_1","first_name":"` + "\xff" + `"}`,
		`{"id":"user_1","first_name":null,"last_name":"Doe"}`, `{"id":"user_1","first_name":"Jane","last_name":null}`, `{"id":"user_1","first_name":"","last_name":""}`,
		`{"id":"user_1","first_name":5}`, `{"id":"user_1","last_name":{}}`, `{"id":"user_1","image_url":[]}`, `{"id":"user_1","First_Name":"Jane"}`,
		`{"id":"user_1","first_name":"Jane","first_name":"Joan"}`, `{"id":"user_1","first_name":"Jane","first_name":null}`, `{"id":"user_1","first_name":1,"first_name":"Jane"}`,
		`{"id":null}`, `{"id":5}`, `{"id":"user_1","id":5}`, `{}`, `[]`, `null`, `"user_1"`,
		`{"id":"user_1","created_at":1654012591514,"updated_at":1654012591835}`, `{"id":"user_1","created_at":null,"updated_at":null}`,
		`{"id":"user_1","created_at":0}`, `{"id":"user_1","created_at":-5}`, `{"id":"user_1","updated_at":1.5}`, `{"id":"user_1","updated_at":1e3}`,
		`{"id":"user_1","updated_at":"1654012591835"}`, `{"id":"user_1","updated_at":9223372036854775807}`, `{"id":"user_1","updated_at":9223372036854775808}`,
		`{"id":"user_1","updated_at":1,"updated_at":2}`, `{"id":"user_1","Updated_At":2}`,
		`{"id":"user_1","primary_email_address_id":"idn_2","email_addresses":[{"id":"idn_1","email_address":"a@example.com"},{"id":"idn_2","email_address":"b@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_2","email_addresses":[{"id":"idn_2","email_address":"a@example.com"},{"id":"idn_2","email_address":"b@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_3","email_addresses":[{"id":"idn_1","email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":null,"email_addresses":[{"id":"idn_1","email_address":"a@example.com"}]}`,
		`{"id":"user_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com"}]}`,
		`{"id":"user_1","email_addresses":[{"email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":null,"email_addresses":[{"id":"","email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com","\u0065mail_address":"b@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com","emaıl_address":"b@example.com"}]}`,
		`{"id":"user_1","first_name":"Jane","firſt_name":"Joan","last_name":"Doe","la\u0073t_name":"Roe"}`,
		`{"id":"user_1","primary_email_address_id":"","email_addresses":[{"email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"","email_addresses":[{"id":null,"email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":null}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":null}`, `{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[null]}`, `{"id":"user_1","primary_email_address_id":"","email_addresses":[null]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[1]}`, `{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[[]]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":{}}`, `{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":"a@example.com"}`,
		`{"id":"user_1","primary_email_address_id":1,"email_addresses":[]}`, `{"id":"user_1","primary_email_address_id":["idn_1"]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":5}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_0","email_address":5},{"id":"idn_1","email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"ID":"idn_1","Email_Address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com","email_address":"b@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com"}],"email_addresses":[{"id":"idn_2"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com"}],"email_addresses":[{"email_address":"b@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn\u005f1","email_addresses":[{"id":"idn_1","email_address":"a\u0040example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_` + "\xff" + `","email_addresses":[{"id":"idn_\ufffd","email_address":"a@example.com"}]}`,
		`{"id":"user_1","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"a@example.com","verification":{"status":"verified"},"linked_to":[]}]}`,
		`{"id":"user_1","email_addresses":[{"i\u0064":"idn_1"}],"primary_email_address_id":"idn_1"}`,
	}
	cases := envelopes
	for _, u := range users {
		cases = append(cases, u, `{"data":`+u+`,"object":"event","type":"user.created","instance_id":"ins_1","timestamp":1654012591835}`)
	}
	for _, o := range append(organizationCases(), membershipCases()...) {
		cases = append(cases, o, `{"data":`+o+`,"object":"event","type":"organization.updated","instance_id":"ins_1","timestamp":1654012591835}`)
	}
	return cases
}

// organizationCases are organization objects for referenceCases: each
// member ParseOrganization reads, null, absent, of the wrong kind,
// duplicated, case-folded and escaped.
func organizationCases() []string {
	const org = `"object":"organization","name":"Acme Clinic","slug":"acme","image_url":"https://img.example.com/o.png","created_at":1654012591514,"updated_at":1654012591835`
	cases := []string{
		`{"id":"org_1",` + org + `}`, `{"id":"org_1"}`, `{"id":"org_1","object":"organization"}`, `{` + org + `}`,
		`{"id":"","name":"Acme"}`, `{"id":null,"name":"Acme"}`, `{"id":5}`, `{"id":"org_1","id":"org_2"}`, `{"ID":"org_2","id":"org_1"}`, `{"i\u0064":"org_1"}`,
		`{"id":"org_1","name":"Acme","name":"Beta"}`, `{"id":"org_1","name":"Acme","Name":"Beta"}`, `{"id":"org_1","name":"Acme","n\u0061me":"Beta"}`,
		`{"id":"org_1","name":"Acme","namе":"Beta"}`, `{"id":"org_1","slug":"acme","ſlug":"beta"}`,
		`{"id":"org_1","name":null,"slug":null,"image_url":null,"created_at":null,"updated_at":null}`,
		`{"id":"org_1","name":5}`, `{"id":"org_1","slug":{}}`, `{"id":"org_1","image_url":[]}`, `{"id":"org_1","name":true}`,
		`{"id":"org_1","name":"Acme \"Clinic\" \u00e9\ud83d\ude00","slug":"` + "\xff" + `","image_url":"a\/b"}`,
		`{"id":"org_1","name":"` + "\xff\xfe" + `"}`, `{"id":"org_\u0031","name":"\ud800"}`,
		`{"id":"org_1","created_at":0}`, `{"id":"org_1","created_at":-5}`, `{"id":"org_1","created_at":1.5}`, `{"id":"org_1","updated_at":1e3}`,
		`{"id":"org_1","updated_at":"1654012591835"}`, `{"id":"org_1","updated_at":253402300800000}`, `{"id":"org_1","updated_at":9223372036854775808}`,
		`{"id":"org_1","updated_at":1,"updated_at":2}`, `{"id":"org_1","Updated_At":2}`, `{"id":"org_1","updated_at":-62135596800001}`,
		`{ "id" : "org_1" , "name" : "Acme" ,` + "\n\t" + `"updated_at" : 1654012591835 }`,
		`{"id":"org_1","public_metadata":{"name":"x","id":"y"},"private_metadata":[{"slug":1}],"max_allowed_memberships":5,"admin_delete_enabled":true}`,
	}
	return cases
}

// membershipCases are organization membership objects for referenceCases,
// with the nested organization and public_user_data read by hand too.
func membershipCases() []string {
	const times = `"created_at":1654012591514,"updated_at":1654012591835`
	const whole = `"object":"organization_membership","role":"org:admin","organization":{"id":"org_1","name":"Acme","slug":"acme"},"public_user_data":{"user_id":"user_1","identifier":"a@example.com"},` + times
	cases := []string{
		`{"id":"orgmem_1",` + whole + `}`, `{` + whole + `}`, `{"id":"","object":"organization_membership"}`, `{"id":5,` + whole + `}`,
		`{"id":"orgmem_1","object":"organization_membership"}`,
		`{"deleted":true,"id":"orgmem_1","object":"organization_membership"}`,
		`{"deleted":true,"id":"orgmem_1","object":"organization_membership_deleted"}`,
		`{"deleted":true,"id":"orgmem_1"}`, `{"id":"orgmem_1","object":null,"role":5}`, `{"id":"orgmem_1","object":5}`, `{"id":"orgmem_1","object":["organization_membership"]}`,
		`{"id":"orgmem_1","object":"Organization_Membership","role":5}`, `{"id":"orgmem_1","object":"organization_membership","object":"x"}`,
		`{"id":"orgmem_1","object":"x","object":"organization_membership"}`, `{"id":"orgmem_1","Object":"organization_membership"}`,
		`{"id":"orgmem_1","object":"organization\u005fmembership","role":"org:member"}`, `{"id":"orgmem_1","\u006fbject":"organization_membership"}`,
		`{"id":"orgmem_1","object":"x","role":5,"organization":1,"role":6}`,
		`{"id":"orgmem_1","object":"organization_membership","role":null,"organization":null,"public_user_data":null,"created_at":null,"updated_at":null}`,
		`{"id":"orgmem_1","object":"organization_membership","role":5}`, `{"id":"orgmem_1","object":"organization_membership","role":"a","role":"b"}`,
		`{"id":"orgmem_1","object":"organization_membership","role":"a","Role":"b"}`, `{"id":"orgmem_1","object":"organization_membership","rol\u0065":"b"}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":"org_1"}`, `{"id":"orgmem_1","object":"organization_membership","organization":["org_1"]}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{}}`, `{"id":"orgmem_1","object":"organization_membership","organization":{"id":null}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":5}}`, `{"id":"orgmem_1","object":"organization_membership","organization":{"id":{"id":"org_2"}}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1","id":"org_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1","ID":"org_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"i\u0064":"org_2","id":"org_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1","i\u0064":"org_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1","i\u0064":5}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"user_id":"user_1","user\u005fid":"user_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":5,"id":"org_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1"},"organization":{"id":"org_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1"},"Organization":{"id":"org_2"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"name":"x","slug":{"id":"org_2"},"id":"org_\u00e9` + "\xff" + `"}}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{ "id" : "org_1" } ,"public_user_data": { "user_id" :"user_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"user_id":"user_1","user_id":null}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"user_id":null,"user_id":"user_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"User_Id":"user_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"user_id":7}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"user_ıd":"user_2","user_id":"user_1"}}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":true}`,
		`{"id":"orgmem_1","object":"organization_membership","public_user_data":{"identifier":"a@example.com"}}`,
		`{"id":"orgmem_1","object":"organization_membership","created_at":0,"updated_at":-1}`,
		`{"id":"orgmem_1","object":"organization_membership","created_at":1.5}`, `{"id":"orgmem_1","object":"organization_membership","updated_at":"1"}`,
		`{"id":"orgmem_1","object":"organization_membership","updated_at":253402300800000}`,
		`{"id":"orgmem_1","object":"organization_membership","updated_at":1,"updated_at":2}`,
		`{"id":"orgmem_1","object":"organization_membership","organization":{"id":"org_1","nested":{"id":"org_2"},"list":[{"id":"org_3"}]}}`,
	}
	return cases
}

// requireSameAsReference checks ParseEnvelope, ParseUserEvent,
// ParseOrganizationEvent and ParseMembershipEvent, and ParseUser,
// ParseOrganization and ParseMembership (reading body as the data object),
// against the reference readers.
func requireSameAsReference(t *testing.T, body []byte) {
	t.Helper()
	env, err := domain.ParseEnvelope(body)
	wantEnv, wantErr := domain.DecodeEnvelope(body)
	require.Equal(t, wantErr, err, "ParseEnvelope(%q)", body)
	require.Equal(t, wantEnv, env, "ParseEnvelope(%q)", body)
	read, err := domain.ReadEnvelope(body)
	require.Equal(t, wantErr, err, "ReadEnvelope(%q)", body)
	require.Equal(t, wantEnv, read, "ReadEnvelope(%q)", body)

	user, err := domain.ParseUserEvent(body)
	wantUser := domain.User{}
	if wantErr == nil {
		wantUser, wantErr = domain.DecodeUser(wantEnv.Data, wantEnv.Time)
	}
	require.Equal(t, wantErr, err, "ParseUserEvent(%q)", body)
	require.Equal(t, wantUser, user, "ParseUserEvent(%q)", body)

	fallback := time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC)
	user, err = domain.ParseUser(body, fallback)
	wantUser, wantErr = domain.DecodeUser(body, fallback)
	require.Equal(t, wantErr, err, "ParseUser(%q)", body)
	require.Equal(t, wantUser, user, "ParseUser(%q)", body)

	_, envErr := domain.DecodeEnvelope(body)
	org, err := domain.ParseOrganizationEvent(body)
	wantOrg, wantErr := domain.Organization{}, envErr
	if wantErr == nil {
		wantOrg, wantErr = domain.DecodeOrganization(wantEnv.Data, wantEnv.Time)
	}
	require.Equal(t, wantErr, err, "ParseOrganizationEvent(%q)", body)
	require.Equal(t, wantOrg, org, "ParseOrganizationEvent(%q)", body)
	org, err = domain.ParseOrganization(body, fallback)
	wantOrg, wantErr = domain.DecodeOrganization(body, fallback)
	require.Equal(t, wantErr, err, "ParseOrganization(%q)", body)
	require.Equal(t, wantOrg, org, "ParseOrganization(%q)", body)

	membership, err := domain.ParseMembershipEvent(body)
	wantMembership, wantErr := domain.Membership{}, envErr
	if wantErr == nil {
		wantMembership, wantErr = domain.DecodeMembership(wantEnv.Data, wantEnv.Time)
	}
	require.Equal(t, wantErr, err, "ParseMembershipEvent(%q)", body)
	require.Equal(t, wantMembership, membership, "ParseMembershipEvent(%q)", body)
	membership, err = domain.ParseMembership(body, fallback)
	wantMembership, wantErr = domain.DecodeMembership(body, fallback)
	require.Equal(t, wantErr, err, "ParseMembership(%q)", body)
	require.Equal(t, wantMembership, membership, "ParseMembership(%q)", body)
}

// TestReadEnvelopeSharesTheBody: ReadEnvelope's data is the body's own
// bytes (no copy), ParseEnvelope's a copy the caller may keep after
// reusing the body.
func TestReadEnvelopeSharesTheBody(t *testing.T) {
	t.Parallel()
	body := fixtures.ClerkEvent("user.created")
	read, err := domain.ReadEnvelope(body)
	require.NoError(t, err)
	parsed, err := domain.ParseEnvelope(body)
	require.NoError(t, err)
	require.Equal(t, parsed, read)
	start := strings.Index(string(body), `"data"`)
	require.Positive(t, start)
	require.True(t, &read.Data[0] == &body[strings.Index(string(body[start+6:]), "{")+start+6], "ReadEnvelope's data is a slice of the body")
	require.False(t, &parsed.Data[0] == &read.Data[0], "ParseEnvelope's data is a copy")
}
