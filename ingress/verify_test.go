package ingress_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/fixtures"
)

func vectors(t *testing.T) []fixtures.SvixVector {
	t.Helper()
	vs := fixtures.SvixVectors()
	require.NotEmpty(t, vs)
	return vs
}

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", fmt.Sprint(ts))
	h.Set("svix-signature", sig)
	return h
}

func TestSvixVectors(t *testing.T) {
	t.Parallel()
	for _, v := range vectors(t) {
		at := time.Unix(v.Timestamp, 0)
		verifier, err := ingress.NewVerifier([]string{v.Secret}, func() time.Time { return at.Add(time.Minute) })
		require.NoError(t, err)

		h := headers(v.MsgID, v.Timestamp, v.Signature)
		d, err := ingress.ReadHeaders(h)
		require.NoError(t, err)
		require.NoError(t, verifier.Verify([]byte(v.Payload), h, d), v.MsgID)

		// Several signatures in one header (Svix sends one per active
		// secret): any match is enough.
		h.Set("svix-signature", "v1,bm90IGl0 "+v.Signature)
		require.NoError(t, verifier.Verify([]byte(v.Payload), h, d), v.MsgID)

		if v.KnownBadSignature != "" {
			h := headers(v.MsgID, v.Timestamp, v.KnownBadSignature)
			err := verifier.Verify([]byte(v.Payload), h, d)
			require.Equal(t, "no_matching_signature", domain.ErrorReason(err))
		}
		// The same signature with the real clock is too old.
		real, err := ingress.NewVerifier([]string{v.Secret}, nil)
		require.NoError(t, err)
		err = real.Verify([]byte(v.Payload), headers(v.MsgID, v.Timestamp, v.Signature), d)
		require.Equal(t, "timestamp_too_old", domain.ErrorReason(err))
	}
}

func TestParseSecrets(t *testing.T) {
	t.Parallel()
	got, err := ingress.ParseSecrets(" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD ")
	require.NoError(t, err)
	require.Len(t, got, 2)

	_, err = ingress.ParseSecrets("")
	require.EqualError(t, err, "no signing secret set")
	_, err = ingress.ParseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw sk_live_notawebhooksecret")
	require.EqualError(t, err, `signing secret 2 of 2 does not start with "whsec_" (copy it from Clerk's dashboard, Webhooks → endpoint → Signing Secret)`)
	require.NotContains(t, err.Error(), "notawebhooksecret", "a secret's value is never echoed")
	_, err = ingress.ParseSecrets("whsec_!!!notbase64")
	require.EqualError(t, err, "signing secret 1 of 1 is not whsec_ followed by base64")
}

func TestErrorIDFormat(t *testing.T) {
	t.Parallel()
	id := ingress.NewErrorID(time.UnixMilli(1757344458980))
	require.Regexp(t, `^ERR_1757344458980_[0-9a-z]{9}$`, id)
	require.NotEqual(t, id, ingress.NewErrorID(time.UnixMilli(1757344458980)))
}
