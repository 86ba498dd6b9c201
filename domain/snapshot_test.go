package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
)

// A snapshot keeps the API's user object byte for byte (json.Marshal
// would escape the & of a URL) and its body depends only on it.
func TestUserSnapshotEntryKeepsTheAPIsBytes(t *testing.T) {
	t.Parallel()
	user := `{"id":"user_1","object":"user","image_url":"https://img.example.com/a?x=1&y=<2>","first_name":"Zoë",` +
		`"last_name":null,"primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"z@example.com"}],` +
		`"created_at":1700000000000, "updated_at":1700000001234}`
	read := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	e, u, err := domain.NewUserSnapshotEntry(json.RawMessage(user), read)
	require.NoError(t, err)
	require.Equal(t, `{"data":`+user+`,"instance_id":"clerk-api","object":"event","timestamp":1700000001234,"type":"clerk.user.snapshot"}`, string(e.Payload))
	require.Equal(t, domain.LedgerEntry{SvixID: "capi_user_1_1700000001234", Source: "clerk-api", EventType: "clerk.user.snapshot",
		SubjectID: "user_1", InstanceID: "clerk-api", EventTime: time.UnixMilli(1700000001234).UTC(), TimestampUnit: "ms",
		ReceivedAt: read, Payload: e.Payload}, e)
	require.Equal(t, "z@example.com", u.Email)
	env, err := domain.ParseEnvelope(e.Payload)
	require.NoError(t, err)
	require.Equal(t, user, string(env.Data))

	again, _, err := domain.NewUserSnapshotEntry(json.RawMessage(user), read.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, e.Payload, again.Payload, "the same version read later: the same body")
	require.Equal(t, e.SvixID, again.SvixID)
}

func TestUserSnapshotEntryRefusesWhatIsNotAUser(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ user, reason string }{
		{`{"id":"user_1","object":"user"}`, "data.updated_at is missing"},
		{`{"id":"user_1","updated_at":"soon"}`, `"updated_at" must be an integer (unix milliseconds)`},
		{`{"object":"user","updated_at":1}`, "data.id is empty"},
		{`{"id":"user_1\u0001","updated_at":1}`, "control characters"},
		{`[1,2]`, "not a Clerk user object"},
		{`{"id":"user_1","updated_at":1`, "not a Clerk user object"},
	} {
		_, _, err := domain.NewUserSnapshotEntry(json.RawMessage(c.user), time.Now())
		require.ErrorContains(t, err, c.reason, c.user)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err), c.user)
	}
}

func TestUserNotFoundEntry(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	e, err := domain.NewUserNotFoundEntry("user_9", at)
	require.NoError(t, err)
	require.Equal(t, "capi_user_9_not_found", e.SvixID)
	require.Equal(t, at.Truncate(time.Millisecond), e.EventTime)
	require.JSONEq(t, `{"data":{"id":"user_9","object":"user","reason":"`+domain.UserNotFoundReason+`"},"instance_id":"clerk-api","object":"event","timestamp":`+
		"1777636800123"+`,"type":"clerk.user.not_found"}`, string(e.Payload))
	_, err = domain.NewUserNotFoundEntry("", at)
	require.Error(t, err)
}
