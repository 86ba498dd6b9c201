package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"

	"github.com/webhookd/webhookd/admin"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// UsersCmd groups the commands on the users read model.
type UsersCmd struct {
	Assign UsersAssignCmd `cmd:"" help:"Change a user's role and/or practice, recorded as a ledger event."`
}

// UsersAssignCmd records an access change. It never updates the users
// table directly: it appends a webhookd.user.access_changed event, which
// the users projection applies, so every access change is in the audit
// trail and a rebuild reproduces it.
type UsersAssignCmd struct {
	Database
	ClerkID    string  `name:"clerk-id" required:"" help:"Clerk user id (user_…)."`
	Role       *string `name:"role" help:"New role, e.g. ADMIN or USER."`
	Practice   *string `name:"practice" help:"Practice id (the Clerk organization id, org_…) to assign; it must be an active practice in the practices table. An empty value removes the practice."`
	Force      bool    `name:"force" help:"Assign a practice that is not (yet) an active practice in the practices table: unknown (e.g. its organization.created has not arrived) or deleted."`
	Actor      string  `name:"actor" env:"WEBHOOKD_ACTOR" help:"Who makes the change (recorded). Defaults to the operating-system user."`
	Reason     string  `name:"reason" help:"Why (recorded; do not put personal data here)."`
	SigningKey string  `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve seals the ledger with (in development mode .webhookd/signing-key): the access change is signed with it, as every entry webhookd appends. Required once the ledger is sealed."`
}

// Run appends the access change and prints its svix id.
func (c *UsersAssignCmd) Run(ctx context.Context, g *Globals) error {
	change := domain.AccessChange{ClerkID: c.ClerkID, Role: c.Role, PracticeID: c.Practice, Actor: c.Actor, Reason: c.Reason}
	if change.Actor == "" {
		change.Actor = osUser()
	}
	if err := change.Validate(); err != nil {
		return fmt.Errorf("%s", domain.ErrorMessage(err))
	}
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "users assign", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	store, err := eventstore.New(pool, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := appendSigningKey(ctx, store, c.devSetting(conn, c.SigningKey, devKeyFile))
	if err != nil {
		return err
	}
	// The same code as the admin API's POST /api/users/{id}/access.
	entry, err := admin.RecordAccessChange(ctx, pool, &admin.Recorder{Ledger: store, Key: key}, change, c.Force)
	switch domain.ErrorCode(err) {
	case "":
	case domain.EINVALID:
		return errors.New(domain.ErrorMessage(err))
	default:
		return fmt.Errorf("record access change: %s", domain.ErrorMessage(err))
	}
	out, _ := json.Marshal(map[string]any{"status": "recorded", "svix_id": entry.SvixID, "event_type": entry.EventType, "clerk_id": change.ClerkID, "actor": change.Actor})
	fmt.Fprintln(g.stdout(), string(out))
	return nil
}

func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return ""
}
