package redact

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lmittmann/tint"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/fixtures"
)

// formats are the outputs every leak test checks; the text format is tint,
// whose rendering (fmt for maps and structs, raw bytes) differs from JSON.
var formats = []string{FormatJSON, FormatText}

// logOutputs runs logAll against the process logger in each format and
// returns everything written. It also runs logAll against the same
// handlers without redaction and returns that output, so a test can prove
// that the data it expects to be hidden really was logged.
func logOutputs(t *testing.T, logAll func(*slog.Logger)) (redacted, raw map[string]string) {
	t.Helper()
	redacted, raw = map[string]string{}, map[string]string{}
	for _, format := range formats {
		var out, control bytes.Buffer
		logger, err := NewLogger(&out, format, slog.LevelDebug)
		require.NoError(t, err)
		logAll(logger)
		logAll(slog.New(newFormatHandler(&control, format, slog.LevelDebug)))
		redacted[format], raw[format] = out.String(), control.String()
	}
	return redacted, raw
}

// requireNoLeak checks the redacted output of every format for the
// secrets, and the unredacted control output (in at least one format) for
// each of them, so that a secret that was never logged cannot pass.
func requireNoLeak(t *testing.T, redacted, raw map[string]string, secrets, kept []string) {
	t.Helper()
	for _, secret := range secrets {
		require.True(t, strings.Contains(raw[FormatJSON], secret) || strings.Contains(raw[FormatText], secret),
			"test is vacuous: %q is not in the unredacted output", secret)
		for format, out := range redacted {
			require.NotContains(t, out, secret, "%s output leaks %q", format, secret)
		}
	}
	for format, out := range redacted {
		for _, k := range kept {
			require.Contains(t, out, k, "%s output lost %q", format, k)
		}
		require.NotRegexp(t, anyEmail, out, "%s output holds an email address", format)
		require.NotRegexp(t, anyE164, out, "%s output holds a phone number", format)
		require.Contains(t, out, Redacted)
	}
}

var (
	anyEmail = regexp.MustCompile(`[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+\.[\p{L}]{2,}`)
	anyE164  = regexp.MustCompile(`\+[1-9]\d{7,14}`)
)

// jsonLines decodes JSON log output, one object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), "line %s", sc.Text())
		lines = append(lines, line)
	}
	require.NoError(t, sc.Err())
	return lines
}

// at walks a decoded JSON value along keys (map keys or slice indexes).
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			require.True(t, ok, "at %q: %T is not an object", p, v)
			v, ok = m[p]
			require.True(t, ok, "missing key %q in %v", p, m)
		case int:
			s, ok := v.([]any)
			require.True(t, ok, "at %d: %T is not an array", p, v)
			v = s[p]
		}
	}
	return v
}

func loadFixture(t *testing.T, eventType string) map[string]any {
	t.Helper()
	var event map[string]any
	require.NoError(t, json.Unmarshal(fixtures.ClerkEvent(eventType), &event))
	return event
}

func TestClerkPayloadsAreRedacted(t *testing.T) {
	t.Parallel()

	events := map[string]map[string]any{}
	for _, typ := range fixtures.ClerkEventTypes() {
		events[typ+".json"] = loadFixture(t, typ)
	}
	require.Len(t, events, 5)
	redacted, raw := logOutputs(t, func(logger *slog.Logger) {
		for _, name := range []string{
			"organization.created.json", "organizationMembership.created.json",
			"session.created.json", "user.created.json", "user.deleted.json",
		} {
			event := events[name]
			logger.Info("clerk webhook received",
				"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
				"event_type", event["type"],
				"remote_addr", "54.164.207.221:443",
				slog.Any("event", event))
		}
	})

	secrets := []string{
		"example@example.org", "Example", "567772", "ex_123456789",
		"192.168.1.100", "Mozilla", "Jane", "Doe", "jane.doe@acme.com",
		"San Francisco", "Acme Corp", "img.clerk.com", "gravatar",
	}
	kept := []string{
		"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "54.164.207.221:443",
		"user.created", "user.deleted", "session.created", "organization.created",
		"user_29w83sxmDNGwOuEthce5gg56FcC", "idn_29w83yL7CwVlJXylYLxcslromF1",
		"user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "user_2h8op3Isl1QR7tKu5FGNfaLKEoU",
		"sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"orgmem_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "ins_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "ins_123",
		"1654012591514", "1654012591835", "1716883200000", "1716883200",
		"org:posts:read", "Chrome", "acme-corp",
	}
	requireNoLeak(t, redacted, raw, secrets, kept)

	// The structure survives: ids where they were, whole PII fields hidden,
	// a flag under a credential-like key still readable.
	lines := jsonLines(t, redacted[FormatJSON])
	require.Len(t, lines, 5)
	user := at(t, lines[3], "event", "data")
	require.Equal(t, "user_29w83sxmDNGwOuEthce5gg56FcC", at(t, user, "id"))
	require.Equal(t, "idn_29w83yL7CwVlJXylYLxcslromF1", at(t, user, "primary_email_address_id"))
	for _, key := range []string{
		"first_name", "last_name", "email_addresses", "phone_numbers", "username", "birthday",
		"gender", "image_url", "profile_image_url", "external_id", "web3_wallets",
		"public_metadata", "private_metadata", "unsafe_metadata",
	} {
		require.Equal(t, Redacted, at(t, user, key), "key %s", key)
	}
	require.Equal(t, true, at(t, user, "password_enabled"))
	require.Equal(t, false, at(t, user, "two_factor_enabled"))
	require.InDelta(t, 1654012591514, at(t, user, "created_at"), 0)

	session := at(t, lines[2], "event")
	require.Equal(t, Redacted, at(t, session, "event_attributes", "http_request", "client_ip"))
	require.Equal(t, Redacted, at(t, session, "event_attributes", "http_request", "user_agent"))
	require.Equal(t, Redacted, at(t, session, "data", "latest_activity", "ip_address"))
	require.Equal(t, Redacted, at(t, session, "data", "latest_activity", "city"))
	require.Equal(t, "US", at(t, session, "data", "latest_activity", "country"))

	membership := at(t, lines[1], "event", "data", "public_user_data")
	require.Equal(t, "user_2h8op3Isl1QR7tKu5FGNfaLKEoU", at(t, membership, "user_id"))
	require.Equal(t, Redacted, at(t, membership, "identifier"))

	// Logging must not edit the caller's map: the ingress still needs it.
	data := events["user.created.json"]["data"].(map[string]any)
	require.Equal(t, "Example", data["first_name"])
	require.Len(t, data["email_addresses"], 1)
}

// patient implements slog.LogValuer, the way a domain type would choose
// what it logs; its choice is still checked.
type patient struct{ clerkID, email string }

func (p patient) LogValue() slog.Value {
	return slog.GroupValue(slog.String("clerk_id", p.clerkID), slog.String("contact", p.email))
}

// profile is logged with slog.Any: its JSON field names decide, and the
// untagged LastName field is matched by its Go name.
type profile struct {
	ID        string         `json:"id"`
	FirstName string         `json:"firstName"`
	LastName  string         // no tag: the key is "LastName"
	Email     string         `json:"email"`
	Notes     map[string]any `json:"notes"`
	CreatedAt time.Time      `json:"created_at"`
}

func TestAdversarialRecordsAreRedacted(t *testing.T) {
	t.Parallel()

	occurred := time.Date(2024, 5, 28, 8, 0, 0, 0, time.UTC)
	redacted, raw := logOutputs(t, func(logger *slog.Logger) {
		// Personal data in the message itself.
		logger.Info("welcome mail to zoe.angstrom@example.com bounced; call +1 555 123 4567 or (555) 987-6543")
		logger.Warn("sms to +4915112345678 failed, fallback 555-222-3333, office +44 20 7946 0958")

		// Names, in every spelling of the key and in several scripts.
		logger.Info("profile",
			"clerk_id", "user_29w83sxmDNGwOuEthce5gg56FcC",
			"first_name", "Zoë", "last_name", "Ångström", "fullName", "Zoë Ångström",
			"First-Name", "Renée", "FIRST_NAME", "李", "lastName", "小龍", "name", "李小龍",
			"username", "zoe_the_great", "birthday", "1990-04-01", "gender", "nonbinary")

		// PII at depth, under keys that mean nothing.
		logger.Info("note", slog.Any("payload", map[string]any{
			"notes": map[string]any{"deep": []any{map[string]any{"x": "mail me at a.b+c@example.co.uk"}}},
			"list":  []any{"reach.me@example.net", map[string]any{"n": "+33 6 12 34 56 78"}},
		}))

		// Groups, nested groups, WithAttrs and WithGroup.
		logger.Info("grouped",
			slog.Group("user",
				slog.String("id", "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"),
				slog.String("email", "grp@example.com"),
				slog.Group("profile",
					slog.String("phone_number", "+12025550143"),
					slog.String("bio", "ring (555) 123-4567 evenings")),
				slog.Group("email", slog.String("primary", "primary-is-hidden-whole"))))
		logger.With("email", "with@example.com", "svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").
			Info("with attrs")
		logger.WithGroup("private_metadata").Info("metadata group",
			"diagnosis", "type 2 diabetes", "insured", true, slog.Group("", "plan", "platinum-care"))
		logger.WithGroup("request").
			With("user_agent", "Mozilla/5.0 (X11; Linux x86_64)", "client_ip", "203.0.113.7",
				"remote_addr", "54.164.207.221:443", "path", "/webhooks/clerk").
			Info("request")

		// Errors that quote personal data or a body.
		logger.Error("lookup failed",
			"error_id", "ERR_1757344458980_abc123def",
			"err", fmt.Errorf("clerk lookup for err@example.com: %w", errors.New("not found")))
		logger.Error("decode failed", "err",
			errors.New(`invalid character 'x' after object key:value pair: {"first_name":"Annabelle","last_name":"Quist"}`))
		logger.Error("joined", "err", errors.Join(errors.New("a"), errors.New("b: +1 (555) 010-9999")))
		logger.Error("tinted", tint.Err(errors.New("retry for tinted@example.com")))

		// Structs, LogValuers, maps keyed by personal data, HTTP headers, bytes.
		logger.Info("struct", slog.Any("profile", profile{
			ID: "user_29w83sxmDNGwOuEthce5gg56FcC", FirstName: "Bartholomew", LastName: "Okonkwo-Smythe",
			Email: "bart@example.org", Notes: map[string]any{"remark": "prefers +1-555-404-0404"},
			CreatedAt: occurred,
		}))
		logger.Info("valuer", "patient", patient{clerkID: "user_2h8op3Isl1QR7tKu5FGNfaLKEoU", email: "valuer@example.com"})
		logger.Info("keyed", slog.Any("counts", map[string]int{"keyed@example.com": 1, "second@example.com": 2}))
		logger.Info("headers", slog.Any("headers", http.Header{
			"Svix-Id":         {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
			"Svix-Signature":  {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDDdXIGT0="},
			"Authorization":   {"Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc"},
			"X-Forwarded-For": {"198.51.100.23"},
		}))
		logger.Info("bytes", slog.Any("raw", []byte(`{"first_name":"Wilhelmina"}`)))

		// Credentials under telling keys and inside text.
		logger.Info("config",
			"signing_secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"database_url", "postgres://webhookd:s3cretpw@db.internal:5432/webhookd",
			"authorization", "Basic d2ViaG9va2Q6aHVudGVyMg==",
			"svix-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

		// Facts that must stay readable.
		logger.Info("delivered in took 1.5s",
			"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
			"subject_id", "user_29w83sxmDNGwOuEthce5gg56FcC",
			"session", "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
			"org", "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
			"request_id", "550e8400-e29b-41d4-a716-446655440000",
			"occurred_at", "2024-05-28T08:00:00Z",
			"clerk_timestamp_ms", int64(1654012591514),
			"svix_timestamp", "1716883200",
			"latency", 1500*time.Millisecond)
	})

	secrets := []string{
		"zoe.angstrom@example.com", "555 123 4567", "987-6543", "4915112345678", "222-3333", "7946 0958",
		"Zoë", "Ångström", "Renée", "李", "小龍", "zoe_the_great", "1990-04-01", "nonbinary",
		"a.b+c@example.co.uk", "example.co.uk", "reach.me@example.net", "12 34 56 78",
		"grp@example.com", "2025550143", "123-4567", "primary-is-hidden-whole",
		"with@example.com", "type 2 diabetes", "platinum-care",
		"Mozilla", "X11", "203.0.113.7",
		"err@example.com", "Annabelle", "Quist", "010-9999", "tinted@example.com",
		"Bartholomew", "Okonkwo-Smythe", "bart@example.org", "404-0404",
		"valuer@example.com", "keyed@example.com", "second@example.com",
		"K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDDdXIGT0", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "198.51.100.23",
		"Wilhelmina",
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "s3cretpw", "d2ViaG9va2Q6aHVudGVyMg", "g0hM9SsE",
	}
	kept := []string{
		"user_29w83sxmDNGwOuEthce5gg56FcC", "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "user_2h8op3Isl1QR7tKu5FGNfaLKEoU",
		"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"ERR_1757344458980_abc123def", "550e8400-e29b-41d4-a716-446655440000",
		"2024-05-28T08:00:00Z", "1654012591514", "1716883200", "took 1.5s",
		"54.164.207.221:443", "/webhooks/clerk", "db.internal:5432", "not found",
	}
	requireNoLeak(t, redacted, raw, secrets, kept)

	lines := jsonLines(t, redacted[FormatJSON])
	byMsg := map[string]map[string]any{}
	for _, l := range lines {
		byMsg[l["msg"].(string)] = l
	}
	require.Equal(t, map[string]any{"diagnosis": Redacted, "insured": Redacted, "plan": Redacted},
		byMsg["metadata group"]["private_metadata"])
	require.Equal(t, map[string]any{
		"user_agent": Redacted, "client_ip": Redacted,
		"remote_addr": "54.164.207.221:443", "path": "/webhooks/clerk",
	}, byMsg["request"]["request"])
	require.Equal(t, "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S", at(t, byMsg["grouped"], "user", "id"))
	require.Equal(t, Redacted, at(t, byMsg["grouped"], "user", "email"))
	require.Equal(t, "ring [REDACTED] evenings", at(t, byMsg["grouped"], "user", "profile", "bio"))
	require.Equal(t, "clerk lookup for [REDACTED]: not found", at(t, byMsg["lookup failed"], "err"))
	require.Equal(t, `invalid character 'x' after object key:value pair: [REDACTED]`, at(t, byMsg["decode failed"], "err"))
	require.Equal(t, "2024-05-28T08:00:00Z", at(t, byMsg["struct"], "profile", "created_at"))
	require.Equal(t, Redacted, at(t, byMsg["struct"], "profile", "LastName"))
	require.Equal(t, "user_2h8op3Isl1QR7tKu5FGNfaLKEoU", at(t, byMsg["valuer"], "patient", "clerk_id"))
	counts := at(t, byMsg["keyed"], "counts").(map[string]any)
	require.ElementsMatch(t, []float64{1, 2}, []float64{counts[Redacted].(float64), counts[Redacted+"#2"].(float64)},
		"two keys that mask alike must both survive")
	require.Equal(t, []any{"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}, at(t, byMsg["headers"], "headers", "Svix-Id"))
	require.Equal(t, Redacted, at(t, byMsg["headers"], "headers", "Svix-Signature"))
	require.Equal(t, "postgres://[REDACTED]@db.internal:5432/webhookd", at(t, byMsg["config"], "database_url"))
	require.InDelta(t, 1500*time.Millisecond, at(t, byMsg["delivered in took 1.5s"], "latency"), 0)
}

func TestRedactingHandlerKeepsTintColours(t *testing.T) {
	t.Parallel()

	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	var got, want bytes.Buffer
	colored := &tint.Options{ReplaceAttr: noTime} // colours on, as on a terminal
	slog.New(NewRedactingHandler(tint.NewHandler(&got, colored))).
		Error("sync failed", tint.Err(errors.New("no user for ann@example.com")))
	slog.New(tint.NewHandler(&want, colored)).
		Error("sync failed", tint.Err(errors.New("no user for [REDACTED]")))

	require.Contains(t, got.String(), "\x1b[")
	require.Equal(t, want.String(), got.String())
}

func TestRedactingHandlerRespectsInnerLevelAndWrapsOnce(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	inner := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})
	h := NewRedactingHandler(inner)
	require.Same(t, h, NewRedactingHandler(h))
	require.False(t, h.Enabled(t.Context(), slog.LevelInfo))
	require.True(t, h.Enabled(t.Context(), slog.LevelWarn))
	require.Same(t, h, h.WithGroup(""))
	require.Same(t, h, h.WithAttrs(nil))

	logger := slog.New(h)
	logger.Info("dropped for jane@example.com")
	logger.Warn("kept for jane@example.com")
	require.Len(t, jsonLines(t, buf.String()), 1)
	require.Contains(t, buf.String(), `"msg":"kept for [REDACTED]"`)
}

func TestRedactingHandlerHidesCyclesAndUnmarshalableValues(t *testing.T) {
	t.Parallel()

	cyclic := map[string]any{"id": "user_29w83sxmDNGwOuEthce5gg56FcC"}
	cyclic["self"] = cyclic
	var buf bytes.Buffer
	logger := slog.New(NewRedactingHandler(slog.NewJSONHandler(&buf, nil)))
	logger.Info("odd values",
		slog.Any("cyclic", cyclic),
		slog.Any("channel", make(chan int)),
		slog.Any("func", func() {}),
		slog.Any("nil", nil))

	line := jsonLines(t, buf.String())[0]
	require.Equal(t, "user_29w83sxmDNGwOuEthce5gg56FcC", at(t, line, "cyclic", "id"))
	require.Equal(t, Redacted, line["channel"])
	require.Equal(t, Redacted, line["func"])
	require.Nil(t, line["nil"])
}

func BenchmarkRedactingHandlerClerkPayload(b *testing.B) {
	var event map[string]any
	require.NoError(b, json.Unmarshal(fixtures.ClerkEvent("user.created"), &event))
	logger, err := NewLogger(io.Discard, FormatJSON, slog.LevelInfo)
	require.NoError(b, err)
	for b.Loop() {
		logger.Info("clerk webhook received",
			"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "event_type", "user.created",
			slog.Any("event", event))
	}
}

func BenchmarkRedactingHandlerIdsOnly(b *testing.B) {
	logger, err := NewLogger(io.Discard, FormatJSON, slog.LevelInfo)
	require.NoError(b, err)
	for b.Loop() {
		logger.Info("event appended",
			"svix_id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "event_type", "user.created",
			"subject_id", "user_29w83sxmDNGwOuEthce5gg56FcC", "offset", 1234567)
	}
}

// TestSenderChosenIDsAreMasked covers identifiers a sender controls (the
// svix-id and webhook-id headers, Clerk's data.id) that carry a phone
// number or an email address: ids stay visible, what is personal in them
// does not, whatever glues it to the id.
func TestSenderChosenIDsAreMasked(t *testing.T) {
	t.Parallel()
	hostile := map[string]string{ // id → the personal part
		"msg_+14155550101":                     "+14155550101",
		"msg_+1 415 555 0102":                  "+1 415 555 0102",
		"msg_+1-415-555-0103":                  "+1-415-555-0103",
		"msg_+1_415_555_0104":                  "415_555_0104",
		"msg_415-555-0105":                     "415-555-0105",
		"msg_415.555.0106":                     "415.555.0106",
		"msg_(415) 555-0107":                   "555-0107",
		"msg_14155550108":                      "14155550108",
		"msg_+14155550109_retry2":              "14155550109",
		"msg_4155550110_x":                     "4155550110",
		"user_+447700900111":                   "447700900111",
		"msg_ann.lee@clinic-example.org":       "ann.lee@clinic-example.org",
		"msg_bo.ray%40clinic-example.org":      "bo.ray%40clinic-example.org",
		"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W":      "",
		"user_29w83sxmDNGwOuEthce5gg56FcC":     "",
		"whd_0123456789abcdef0123456789abcdef": "",
	}
	var secrets, kept []string
	for id, part := range hostile {
		if part == "" {
			kept = append(kept, id)
		} else {
			secrets = append(secrets, part)
		}
	}
	redacted, raw := logOutputs(t, func(l *slog.Logger) {
		for id := range hostile {
			l.Warn("signature_rejected", "svix_id", id)
			l.Warn("event_invalid", slog.Group("headers", "webhook-id", id), "clerk_id", id)
			l.Info("delivery", "header", http.Header{"Svix-Id": {id}, "Webhook-Id": {id}},
				"data", map[string]any{"id": id, "object": "user"})
			if part := hostile[id]; part == "" || strings.ContainsAny(part, "+-. ()@%_") {
				// In free text a bare digit run stays visible (it is
				// how timestamps look); under an id key it does not.
				l.Error("append_failed", "cause", fmt.Errorf("no ledger entry with svix-id %q", id))
			}
		}
	})
	requireNoLeak(t, redacted, raw, secrets, kept)
	// The id's prefix stays, so the line still says what kind of id it was.
	require.Contains(t, redacted[FormatJSON], `"svix_id":"msg_[REDACTED]"`)
	// Error ids and timestamps are not ids a sender chooses: their long
	// digit groups stay.
	redacted, _ = logOutputs(t, func(l *slog.Logger) {
		l.Warn("x", "error_id", "ERR_1757344458980_abc123def", "svix_timestamp", "1757344458", "svix_id", "msg_bench000000001")
	})
	for _, out := range redacted {
		require.Contains(t, out, "ERR_1757344458980_abc123def")
		require.Contains(t, out, "1757344458")
		require.Contains(t, out, "msg_bench000000001")
	}
}
