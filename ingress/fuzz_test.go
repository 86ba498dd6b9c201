package ingress_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// fuzzSecret signs the fuzz targets' deliveries; fuzzNow is their clock.
const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var fuzzNow = time.Unix(1716883200, 0).UTC()

// requireSafeError checks the contract of the ingress's errors: a
// *domain.Error with the wanted code whose text echoes no value containing
// an '@'.
func requireSafeError(t *testing.T, err error, code string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error is %T, not *domain.Error: %v", err, err)
	}
	if de.Code != code {
		t.Fatalf("error code %q, want %q: %v", de.Code, code, err)
	}
	if strings.Contains(err.Error(), "@") {
		t.Fatalf("error echoes a value with '@': %v", err)
	}
}

// FuzzReadHeaders feeds arbitrary Svix (or Standard Webhooks) header values
// to ReadHeaders: it never panics, errors are invalid and quote nothing,
// and what it accepts is what was sent. Corpus: testdata/fuzz/FuzzReadHeaders.
func FuzzReadHeaders(f *testing.F) {
	f.Add("msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "1716883200", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", false)
	f.Add("msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "1716883200", "v1,a v1,b", true)
	f.Add("jane.doe@example.com", "1716883200", "v1,x", false)
	f.Add("msg_1", "jane.doe@example.com", "v1,x", false)
	f.Add("msg_1", "-1", "", false)
	f.Add("msg 1", "99999999999999999999", "v1,x", true)
	f.Fuzz(func(t *testing.T, id, ts, sig string, webhookNames bool) {
		h := http.Header{}
		prefix := "svix-"
		if webhookNames {
			prefix = "webhook-"
		}
		h.Set(prefix+"id", id)
		h.Set(prefix+"timestamp", ts)
		h.Set(prefix+"signature", sig)
		d, err := ingress.ReadHeaders(h)
		if err != nil {
			requireSafeError(t, err, domain.EINVALID)
			return
		}
		if d.ID != h.Get(prefix+"id") || d.Signature != h.Get(prefix+"signature") {
			t.Fatalf("ReadHeaders returned %+v for id %q, signature %q", d, id, sig)
		}
	})
}

// FuzzVerify feeds arbitrary bodies and signature headers to Verify: it
// never panics, rejections are unauthorized and quote nothing, and a body
// signed with the secret (sign set) always verifies.
func FuzzVerify(f *testing.F) {
	body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: 1, Time: fuzzNow})
	f.Add(body, "msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", int64(0), "", true)
	f.Add(body, "msg_2g7np7Hrk0SN6kj5EDMLDaKNL0S", int64(0), "v1,AAAA", false)
	f.Add([]byte(`{"email":"jane.doe@example.com"}`), "msg_1", int64(-301), "v1,jane.doe@example.com", false)
	f.Add([]byte{}, "msg_1", int64(400), "v2,abc v1,", false)
	f.Add(body, "msg_1", int64(600), "", true)
	verifier, err := ingress.NewVerifier([]string{fuzzSecret}, func() time.Time { return fuzzNow })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string, skew int64, sig string, sign bool) {
		skew %= 1000 // seconds either side of now: inside and outside the tolerance
		at := fuzzNow.Add(time.Duration(skew) * time.Second)
		h := http.Header{}
		if sign {
			signed, err := clerkfake.Sign(fuzzSecret, id, at, body)
			if err != nil {
				return
			}
			h = signed
		} else {
			h.Set("svix-id", id)
			h.Set("svix-timestamp", strconv.FormatInt(at.Unix(), 10))
			h.Set("svix-signature", sig)
		}
		d, err := ingress.ReadHeaders(h)
		if err != nil {
			requireSafeError(t, err, domain.EINVALID)
			return
		}
		err = verifier.Verify(body, h, d)
		if err != nil {
			requireSafeError(t, err, domain.EUNAUTHORIZED)
		}
		inTolerance := skew >= -int64(ingress.Tolerance/time.Second) && skew <= int64(ingress.Tolerance/time.Second)
		if sign && inTolerance && err != nil {
			t.Fatalf("a delivery signed with the secret %ds from now was rejected: %v", skew, err)
		}
	})
}
