package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/internal/clerkfake"
)

// SendCmd sends realistic, signed Clerk events to a webhookd (or any Clerk
// webhook endpoint), as Clerk's Svix delivers them: a local test without a
// tunnel, like `stripe trigger`.
type SendCmd struct {
	Type   string `arg:"" optional:"" help:"Clerk event type, e.g. user.created (see --list)."`
	To     string `name:"to" placeholder:"URL" help:"Webhook endpoint URL. Defaults to the webhookd on this machine at --addr, e.g. http://localhost:8080/webhooks/clerk."`
	Addr   string `name:"addr" env:"WEBHOOKD_ADDR" default:":8080" help:"Listen address of the webhookd on this machine to send to when --to is not given, as serve takes it."`
	Secret string `name:"secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Signing secret, whsec_…. Defaults to the development secret serve --dev keeps in .webhookd/signing-secret."`
	Data   string `name:"data" placeholder:"FILE" help:"Send this file's JSON body instead of a generated event (still signed)."`
	Count  int    `name:"count" default:"1" help:"How many events to send; each has a new svix-id and (generated events) a new subject."`
	List   bool   `name:"list" help:"List the event types and exit."`
}

// Run sends the events and prints each answer; it fails when an answer is
// not 2xx.
func (c *SendCmd) Run(ctx context.Context, g *Globals) error {
	return c.run(ctx, g.stdout(), devDir)
}

// run is Run writing to out, with the development secret looked up in
// secretDir.
func (c *SendCmd) run(ctx context.Context, out io.Writer, secretDir string) error {
	if c.List {
		for _, t := range clerkfake.Types {
			fmt.Fprintln(out, t)
		}
		return nil
	}
	if c.Count < 1 {
		return fmt.Errorf("--count must be 1 or more, not %d", c.Count)
	}
	body, err := c.fixedBody()
	if err != nil {
		return err
	}
	secrets, err := sendSecrets(c.Secret, secretDir)
	if err != nil {
		return err
	}
	to := c.To
	if to == "" {
		addr := c.Addr
		if addr == "" {
			addr = defaultAddr
		}
		to = webhookURL(addr)
	}

	failed := 0
	for i := 0; i < c.Count; i++ {
		event := body
		if event == nil {
			// A new random subject (and user, organization, …) each time.
			if event, err = clerkfake.Build(c.Type, clerkfake.Options{}); err != nil {
				return err
			}
		}
		msgID := clerkfake.NewMsgID()
		header, err := clerkfake.SignAll(secrets, msgID, time.Now(), event)
		if err != nil {
			return err
		}
		status, answer, err := clerkfake.Deliver(ctx, nil, to, header, event)
		if err != nil {
			return sendError(to, err)
		}
		if status < 200 || status > 299 {
			failed++
		}
		fmt.Fprintf(out, "%d %s  %s %s  svix-id %s  %s\n", status, http.StatusText(status),
			eventType(event), subjectID(event), msgID, oneLine(answer))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d answers were not 2xx", failed, c.Count)
	}
	return nil
}

// fixedBody returns the --data file's contents, or nil when events are
// generated (after checking the type).
func (c *SendCmd) fixedBody() ([]byte, error) {
	if c.Data == "" {
		if c.Type == "" {
			return nil, errors.New("name an event type, e.g. `webhookd send user.created`; `webhookd send --list` lists them all")
		}
		if !clerkfake.Known(c.Type) {
			return nil, unknownTypeError(c.Type)
		}
		return nil, nil
	}
	body, err := os.ReadFile(c.Data)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	if c.Type != "" && eventType(body) != c.Type {
		return nil, fmt.Errorf("--data %s holds a %q event, not %s: leave out the type to send the file as it is", c.Data, eventType(body), c.Type)
	}
	return body, nil
}

// sendError says why no answer came back, without Go's wrapping.
func sendError(to string, err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("cannot send to %s (is webhookd running there?): %v", to, urlErr.Err)
	}
	return fmt.Errorf("cannot send to %s: %v", to, err)
}

// unknownTypeError names the bad type, suggests a near miss and says how to
// see the valid ones.
func unknownTypeError(eventType string) error {
	hint := ""
	for _, t := range clerkfake.Types {
		if strings.EqualFold(t, eventType) || strings.HasPrefix(t, eventType) {
			hint = fmt.Sprintf(" (did you mean %s?)", t)
			break
		}
	}
	return fmt.Errorf("unknown event type %q%s: `webhookd send --list` shows the %d valid types, which are case-sensitive", eventType, hint, len(clerkfake.Types))
}

// sendSecrets returns the secrets to sign with: the --secret flag or its
// environment variables, else the development secret `webhookd serve` keeps
// in dir. Errors never quote a secret.
func sendSecrets(setting, dir string) ([]string, error) {
	what := "--secret (or CLERK_WEBHOOK_SIGNING_SECRET)"
	if setting == "" {
		b, err := os.ReadFile(filepath.Join(dir, devSecretFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no signing secret: pass --secret or set CLERK_WEBHOOK_SIGNING_SECRET (or run `webhookd serve --dev` here once, which keeps a development secret in %s)", filepath.Join(dir, devSecretFile))
		}
		if err != nil {
			return nil, fmt.Errorf("read the development signing secret: %w", err)
		}
		setting = string(b)
		what = filepath.Join(dir, devSecretFile)
	}
	secrets, err := ingress.ParseSecrets(setting)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return secrets, nil
}

// eventType and subjectID read the envelope's type and data.id for the
// report, by exact member name as webhookd records them (a case variant
// such as "TYPE" is not the type); a body that is not a Clerk envelope
// shows "?".
func eventType(body []byte) string {
	if env, err := domain.ParseEnvelope(body); err == nil {
		return env.Type
	}
	return "?"
}

func subjectID(body []byte) string {
	if env, err := domain.ParseEnvelope(body); err == nil {
		return env.SubjectID
	}
	return "?"
}

// oneLine shows an answer body on one line.
func oneLine(b []byte) string {
	var compact bytes.Buffer
	if json.Compact(&compact, b) == nil {
		return compact.String()
	}
	return strings.Join(strings.Fields(string(b)), " ")
}
