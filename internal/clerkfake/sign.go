package clerkfake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// Header names of a Svix delivery.
const (
	HeaderID        = "svix-id"
	HeaderTimestamp = "svix-timestamp"
	HeaderSignature = "svix-signature"
)

// UserAgent is the User-Agent Deliver sends when the headers carry none,
// shaped like the one of Svix's HTTP senders.
const UserAgent = "Svix-Webhooks/1.44.0 (sender-clerkfake; +https://www.svix.com/http-sender/)"

// maxResponse bounds how much of a response body Deliver keeps.
const maxResponse = 1 << 20

// Sign returns the three Svix headers for body, as Clerk's Svix sends them:
// svix-id (msgID, or NewMsgID() when empty), svix-timestamp (unix seconds
// of at, time.Now() when zero) and svix-signature ("v1,<base64 HMAC-SHA256
// of id.timestamp.body>", made by the svix library's Webhook.Sign with the
// whsec_ secret). secret must be "whsec_" followed by base64, as Clerk
// shows it; errors never quote it. The header is built with Set, so Get
// finds every field.
func Sign(secret, msgID string, at time.Time, body []byte) (http.Header, error) {
	return SignAll([]string{secret}, msgID, at, body)
}

// SignAll is Sign with several secrets, as Svix signs during a secret
// rotation: svix-signature lists one "v1,…" signature per secret, separated
// by spaces, and a receiver that knows any one of the secrets accepts it.
func SignAll(secrets []string, msgID string, at time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("clerkfake: no signing secret")
	}
	if msgID == "" {
		msgID = NewMsgID()
	}
	if at.IsZero() {
		at = time.Now()
	}
	sigs := make([]string, 0, len(secrets))
	for i, secret := range secrets {
		if !strings.HasPrefix(secret, "whsec_") {
			return nil, fmt.Errorf("clerkfake: signing secret %d does not start with whsec_", i+1)
		}
		wh, err := svix.NewWebhook(secret)
		if err != nil {
			// The error of base64 decoding may quote the secret: keep it out.
			return nil, fmt.Errorf("clerkfake: signing secret %d is not whsec_ followed by base64", i+1)
		}
		sig, err := wh.Sign(msgID, at, body)
		if err != nil {
			return nil, fmt.Errorf("clerkfake: sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h, nil
}

// defaultClient is Deliver's client when none is given: the default
// transport with a 10 s timeout.
var defaultClient = &http.Client{Timeout: 10 * time.Second}

// Deliver POSTs body with the headers h (typically from Sign) to url, as
// Svix delivers an event, and returns the response's status code and body
// (its first MiB). It adds Content-Type: application/json and a Svix-like
// User-Agent when h has none. A nil client means the default transport
// with a 10 s timeout. err is non-nil only when no response was read; a
// non-2xx status is not an error.
func Deliver(ctx context.Context, client *http.Client, url string, h http.Header, body []byte) (status int, respBody []byte, err error) {
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("clerkfake: deliver: %w", err)
	}
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("clerkfake: deliver: %w", err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return resp.StatusCode, respBody, fmt.Errorf("clerkfake: deliver: reading response: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
	return resp.StatusCode, respBody, nil
}
