package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMaskStringHidesPersonalDataByShape(t *testing.T) {
	t.Parallel()

	cases := map[string]string{
		"mail me at a.b+c@example.co.uk":                  "mail me at [REDACTED]",
		"contact Zoë.Ångström@exämple.de now":             "contact [REDACTED] now",
		"李小龍@例子.中国":                                       "[REDACTED]",
		"GET /users?email=jane%40acme.com":                "GET /users?email=[REDACTED]",
		"<jane.doe@acme.com>":                             "<[REDACTED]>",
		"call +1 555 123 4567 today":                      "call [REDACTED] today",
		"+14155550123":                                    "[REDACTED]",
		"tel:+4915112345678":                              "tel:[REDACTED]",
		"+44 20 7946 0958":                                "[REDACTED]",
		"+1 (555) 123-4567":                               "[REDACTED]",
		"+1-555-123-4567":                                 "[REDACTED]",
		"+1.555.123.4567":                                 "[REDACTED]",
		"(555) 123-4567":                                  "[REDACTED]",
		"(555)123-4567":                                   "[REDACTED]",
		"ring 555-123-4567.":                              "ring [REDACTED].",
		"555.123.4567":                                    "[REDACTED]",
		"555 123 4567":                                    "[REDACTED]",
		"020 7946 0958":                                   "[REDACTED]",
		"1-555-123-4567":                                  "1-[REDACTED]",
		"phones: 555-123-4567, (555) 765-4321":            "phones: [REDACTED], [REDACTED]",
		"postgres://webhookd:s3cretpw@db.internal:5432/x": "postgres://[REDACTED]@db.internal:5432/x",
		"db_password=hunter2 user=app":                    "db_password=[REDACTED] user=app",
		"header Authorization: Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc":                                                  "header Authorization: [REDACTED] [REDACTED]",
		"sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc":                                                                       "sent Bearer [REDACTED]",
		"CLERK_WEBHOOK_SIGNING_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw":                                            "CLERK_WEBHOOK_SIGNING_SECRET=[REDACTED]",
		`decode body: invalid character 'x' after object key:value pair: {"first_name":"Ann","email":"ann@example.com"}`: `decode body: invalid character 'x' after object key:value pair: [REDACTED]`,
		`quoted "{\"first_name\":\"Ann\",\"note\":\"a \\\"b\\\" }\"}" in error`:                                          `quoted "[REDACTED]" in error`,
		`truncated body {"first_name":"Ann","last_na`:                                                                    `truncated body [REDACTED]`,
		`names ["Ann","Lee"] rejected`:                                                                                   `names [REDACTED] rejected`,
		`[{"name":"x"},{"name":"y"}] tail`:                                                                               `[REDACTED] tail`,
		`{ "name" : "brace } inside a string" } after`:                                                                   `[REDACTED] after`,
		`map[body:{"first_name":"Ann"}]`:                                                                                 `map[body:[REDACTED]]`,
		`nested [[ {"first_name":"Ann"} ]] done`:                                                                         `nested [REDACTED] done`,
	}
	for in, want := range cases {
		require.Equal(t, want, maskString(in), "input %q", in)
	}
}

func TestMaskStringKeepsIdentifiersAndFacts(t *testing.T) {
	t.Parallel()

	kept := []string{
		"user_29w83sxmDNGwOuEthce5gg56FcC",
		"sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
		"idn_29w83yL7CwVlJXylYLxcslromF1",
		"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
		"svix-id msg_2KWPBgLlAfxdpx2AI54pPJ85f4W at 1716883200",
		"ERR_1757344458980_abc123def",
		"2024-05-28T08:00:00Z",
		"2024-05-28T08:00:00.123+02:00",
		"2024-05-28 08:00:00.123456789 +0000 UTC m=+1.234567890",
		"created_at 1654012591514 updated_at 1654012591835",
		"550e8400-e29b-41d4-a716-446655440000",
		"12345678-1234-5678-1234-567812345678",
		"POST /webhooks/clerk",
		"GET /api/webhooks/clerk?limit=100",
		"took 1.5s, retry in 2h45m0.5s",
		"remote 54.164.207.221:443",
		"dial tcp 10.0.0.5:5432: connect: connection refused",
		"Chrome/128.0.6613.120",
		"ledger size 1234567890 entries, checkpoint 42",
		"No matching signature found",
		"Message timestamp too old",
		"missing bearer authentication",
		"[REDACTED]",
		"[1 2 3] {ID:42 Kind:user}",
		"version v1.44.0 (go1.26.8)",
		"",
	}
	for _, s := range kept {
		require.Equal(t, s, maskString(s))
	}
}

func TestMaskStringIsLinearOnAdversarialInput(t *testing.T) {
	t.Parallel()

	// Each of these, just under the scan limit, would be quadratic (or
	// recurse once per byte) with a naive scanner; here they must simply
	// finish, and the test stays fast only if the work is linear.
	inputs := []string{
		strings.Repeat("[", maxStringLen),
		strings.Repeat("[ ", maxStringLen/2),
		strings.Repeat(`{"`, maxStringLen/2),
		strings.Repeat("+1 ", maxStringLen/3),
		strings.Repeat("a@", maxStringLen/2-8) + "example.com",
		strings.Repeat("555-", maxStringLen/4),
	}
	for _, in := range inputs {
		require.LessOrEqual(t, len(in), maxStringLen)
		require.NotEmpty(t, maskString(in))
	}

	// Longer strings are not scanned at all: they are hidden whole.
	body := strings.Repeat(`{"first_name":"Ann"}`, 10_000)
	require.Equal(t, "[REDACTED] (200000 bytes)", maskString(body))
}

func TestKeySensitivity(t *testing.T) {
	t.Parallel()

	cases := map[string]sensitivity{
		"email":                    personal,
		"Email":                    personal,
		"email_addresses":          personal,
		"primary_email":            personal,
		"first_name":               personal,
		"firstName":                personal,
		"First-Name":               personal,
		"FIRST_NAME":               personal,
		"last name":                personal,
		"name":                     personal,
		"username":                 personal,
		"phone_numbers":            personal,
		"birthday":                 personal,
		"gender":                   personal,
		"ip":                       personal,
		"ip_address":               personal,
		"client_ip":                personal,
		"source_ip":                personal,
		"user_agent":               personal,
		"User-Agent":               personal,
		"X-Forwarded-For":          personal,
		"metadata":                 personal,
		"public_metadata":          personal,
		"unsafeMetadata":           personal,
		"private_metadata.plan":    personal,
		"image_url":                personal,
		"profile_image_url":        personal,
		"external_id":              personal,
		"web3_wallets":             personal,
		"address":                  personal,
		"city":                     personal,
		"identifier":               personal,
		"signature":                personal,
		"svix-signature":           personal,
		"Svix-Signature":           personal,
		"authorization":            personal,
		"password":                 credential,
		"password_enabled":         credential,
		"secret":                   credential,
		"signing_secret":           credential,
		"token":                    credential,
		"refreshToken":             credential,
		"api_key":                  credential,
		"clerk_id":                 visible,
		"user_id":                  visible,
		"subject_id":               visible,
		"svix_id":                  visible,
		"svix-id":                  visible,
		"svix_timestamp":           visible,
		"event_type":               visible,
		"error_id":                 visible,
		"instance_id":              visible,
		"remote_addr":              visible,
		"primary_email_address_id": visible,
		"primary_phone_number_id":  visible,
		"id":                       visible,
		"type":                     visible,
		"object":                   visible,
		"created_at":               visible,
		"role_name":                visible,
		"browser_name":             visible,
		"listen_address":           visible,
		"status":                   visible,
		"":                         visible,
	}
	for key, want := range cases {
		require.Equal(t, want, keySensitivity(key), "key %q", key)
	}
}

func TestSafeError(t *testing.T) {
	t.Parallel()

	require.Empty(t, SafeError(nil))

	base := errors.New(`clerk: 422 {"errors":[{"message":"bad","meta":{"email_address":"ann@example.com"}}]}`)
	err := fmt.Errorf("sync user_29w83sxmDNGwOuEthce5gg56FcC for ann@example.com (+1 555 123 4567): %w", base)
	require.Equal(t,
		"sync user_29w83sxmDNGwOuEthce5gg56FcC for [REDACTED] ([REDACTED]): clerk: 422 [REDACTED]",
		SafeError(err))

	require.Equal(t, "projection users: context canceled",
		SafeError(errors.New("projection users: context canceled")))
}
