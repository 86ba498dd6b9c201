package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// sentLine is one line of `webhookd send` output; its groups are the
// subject id, the svix-id and the svix-id again in webhookd's answer.
var sentLine = regexp.MustCompile(`^200 OK  user\.created (user_[0-9A-Za-z]{27})  svix-id (msg_[0-9A-Za-z]{27})  \{"status":"accepted","svix_id":"(msg_[0-9A-Za-z]{27})","event_type":"user\.created"\}$`)

func TestSendUserCreatedReachesLedgerAndUsers(t *testing.T) {
	t.Parallel()
	h := start(t)
	var out bytes.Buffer
	send := SendCmd{Type: "user.created", To: h.url, Secret: testSecret, Count: 1}
	require.NoError(t, send.run(context.Background(), &out, t.TempDir()))

	m := sentLine.FindStringSubmatch(strings.TrimSuffix(out.String(), "\n"))
	require.NotNil(t, m, "output: %q", out.String())
	subject, msgID := m[1], m[2]
	require.Equal(t, msgID, m[3])

	e, err := h.store.Get(context.Background(), msgID)
	require.NoError(t, err)
	require.Equal(t, "user.created", e.EventType)
	require.Equal(t, subject, e.SubjectID)
	require.Equal(t, clerkfake.DefaultInstanceID, e.InstanceID)

	// The users projection runs inside serve.
	require.Eventually(t, func() bool {
		var n int
		err := h.db.Pool.QueryRow(context.Background(),
			"SELECT count(*) FROM users WHERE clerk_id = $1 AND deleted_at IS NULL AND email LIKE '%@example.%'", subject).Scan(&n)
		return err == nil && n == 1
	}, 10*time.Second, 20*time.Millisecond, "user %s never reached the users table", subject)
}

func TestSendCountSendsDistinctEvents(t *testing.T) {
	t.Parallel()
	h := start(t)
	var out bytes.Buffer
	send := SendCmd{Type: "user.created", To: h.url, Secret: testSecret, Count: 3}
	require.NoError(t, send.run(context.Background(), &out, t.TempDir()))

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 3, "output: %q", out.String())
	subjects, ids := map[string]bool{}, map[string]bool{}
	for _, l := range lines {
		m := sentLine.FindStringSubmatch(l)
		require.NotNil(t, m, "line: %q", l)
		subjects[m[1]], ids[m[2]] = true, true
	}
	require.Len(t, subjects, 3)
	require.Len(t, ids, 3)
	require.EqualValues(t, 3, h.ledgerCount())
}

func TestSendEveryType(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, typ := range clerkfake.Types {
		var out bytes.Buffer
		send := SendCmd{Type: typ, To: h.url, Secret: testSecret, Count: 1}
		require.NoError(t, send.run(context.Background(), &out, t.TempDir()), typ)
		require.Regexp(t, `^200 OK  `+regexp.QuoteMeta(typ)+` [a-z_]+_[0-9A-Za-z]{27}  svix-id msg_[0-9A-Za-z]{27}  \{"status":"accepted",`, out.String())
	}
	require.EqualValues(t, len(clerkfake.Types), h.ledgerCount())
}

func TestSendDataFile(t *testing.T) {
	t.Parallel()
	h := start(t)
	file := filepath.Join(t.TempDir(), "user.created.json")
	body := fixture(t, "user.created.json")
	require.NoError(t, os.WriteFile(file, body, 0o600))

	var out bytes.Buffer
	send := SendCmd{Data: file, To: h.url, Secret: testSecret, Count: 2}
	require.NoError(t, send.run(context.Background(), &out, t.TempDir()))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 2)
	re := regexp.MustCompile(`^200 OK  user\.created user_29w83sxmDNGwOuEthce5gg56FcC  svix-id (msg_[0-9A-Za-z]{27})  \{"status":"accepted",`)
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		require.NotNil(t, m, "line: %q", l)
		e, err := h.store.Get(context.Background(), m[1])
		require.NoError(t, err)
		require.Equal(t, body, e.Payload, "the file is sent byte for byte")
	}

	send = SendCmd{Type: "user.updated", Data: file, To: h.url, Secret: testSecret, Count: 1}
	require.EqualError(t, send.run(context.Background(), &out, t.TempDir()),
		`--data `+file+` holds a "user.created" event, not user.updated: leave out the type to send the file as it is`)
}

func TestSendReportsRejections(t *testing.T) {
	t.Parallel()
	h := start(t)
	var out bytes.Buffer
	send := SendCmd{Type: "user.deleted", To: h.url, Secret: otherSecret, Count: 2}
	err := send.run(context.Background(), &out, t.TempDir())
	require.EqualError(t, err, "2 of 2 answers were not 2xx")
	require.Regexp(t, `^(401 Unauthorized  user\.deleted user_[0-9A-Za-z]{27}  svix-id msg_[0-9A-Za-z]{27}  \{"error":"unauthorized","reason":"no_matching_signature","message":"signature does not match any active signing secret","error_id":"ERR_\d{13}_[0-9a-z]{9}"\}\n){2}$`, out.String())
	require.NotContains(t, out.String(), otherSecret)
	require.EqualValues(t, 0, h.ledgerCount())
}

func TestSendUsesDevelopmentSecret(t *testing.T) {
	t.Parallel()
	h := start(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, devSecretFile), []byte(testSecret+"\n"), 0o600))
	var out bytes.Buffer
	send := SendCmd{Type: "user.created", To: h.url, Count: 1}
	require.NoError(t, send.run(context.Background(), &out, dir))
	require.Regexp(t, sentLine, strings.TrimSuffix(out.String(), "\n"))
}

func TestSendRefusesBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		cmd  SendCmd
		want string
	}{
		{SendCmd{Type: "user.create", Secret: testSecret, Count: 1},
			"unknown event type \"user.create\" (did you mean user.created?): `webhookd send --list` shows the 46 valid types, which are case-sensitive"},
		{SendCmd{Type: "organizationmembership.created", Secret: testSecret, Count: 1},
			"unknown event type \"organizationmembership.created\" (did you mean organizationMembership.created?): `webhookd send --list` shows the 46 valid types, which are case-sensitive"},
		{SendCmd{Type: "invoice.paid", Secret: testSecret, Count: 1},
			"unknown event type \"invoice.paid\": `webhookd send --list` shows the 46 valid types, which are case-sensitive"},
		{SendCmd{Secret: testSecret, Count: 1},
			"name an event type, e.g. `webhookd send user.created`; `webhookd send --list` lists them all"},
		{SendCmd{Type: "user.created", Secret: testSecret, Count: 0},
			"--count must be 1 or more, not 0"},
		{SendCmd{Type: "user.created", Count: 1},
			"no signing secret: pass --secret or set CLERK_WEBHOOK_SIGNING_SECRET (or run `webhookd serve --dev` here once, which keeps a development secret in " + filepath.Join(dir, devSecretFile) + ")"},
		{SendCmd{Type: "user.created", Secret: "sk_test_123", Count: 1},
			`--secret (or CLERK_WEBHOOK_SIGNING_SECRET): signing secret 1 of 1 does not start with "whsec_" (copy it from Clerk's dashboard, Webhooks → endpoint → Signing Secret)`},
		{SendCmd{Type: "user.created", Secret: testSecret, Count: 1, To: "http://127.0.0.1:1/webhooks/clerk"},
			"cannot send to http://127.0.0.1:1/webhooks/clerk (is webhookd running there?): dial tcp 127.0.0.1:1: connect: connection refused"},
	} {
		var out bytes.Buffer
		err := tc.cmd.run(context.Background(), &out, dir)
		require.EqualError(t, err, tc.want)
		require.Empty(t, out.String())
	}
	require.Len(t, clerkfake.Types, 46, "the messages above count the types")
}

func TestSendList(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	send := SendCmd{List: true}
	require.NoError(t, send.run(context.Background(), &out, t.TempDir()))
	require.Equal(t, strings.Join(clerkfake.Types, "\n")+"\n", out.String())
}
