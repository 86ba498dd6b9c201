package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/projections"
)

// ProjectionsCmd groups the commands on the projections' recorded
// failures.
type ProjectionsCmd struct {
	Failures ProjectionsFailuresCmd `cmd:"" help:"List the ledger entries projections could not apply and skipped (projection_failures)."`
	Retry    ProjectionsRetryCmd    `cmd:"" help:"Apply skipped entries again with the live code (after a fix); recorded as a ledger event."`
}

// ProjectionsFailuresCmd lists projection_failures.
type ProjectionsFailuresCmd struct {
	Database
	Projection string `name:"projection" help:"Only this projection's failures (users, practices, memberships)."`
	JSON       bool   `name:"json" help:"One JSON object per line instead of a table."`
}

// Run prints the failures.
func (c *ProjectionsFailuresCmd) Run(ctx context.Context, g *Globals) error {
	if c.Projection != "" {
		if _, err := projections.ByName(c.Projection); err != nil {
			return err
		}
	}
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "projections failures", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	failures, err := projections.Failures(ctx, pool, projections.FailureFilter{Projection: c.Projection})
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(g.stdout())
		for _, f := range failures {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		return nil
	}
	if len(failures) == 0 {
		fmt.Fprintln(g.stdout(), "no recorded projection failures")
		return nil
	}
	w := tabwriter.NewWriter(g.stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROJECTION\tLEDGER_OFFSET\tSVIX_ID\tEVENT_TYPE\tATTEMPTS\tFAILED_AT\tERROR")
	for _, f := range failures {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", f.Projection, f.Offset, f.SvixID, f.EventType, f.Attempts,
			f.FailedAt.UTC().Format(time.RFC3339), f.Error)
	}
	return w.Flush()
}

// ProjectionsRetryCmd re-drives projection_failures.
type ProjectionsRetryCmd struct {
	Database
	Projection string `name:"projection" help:"Only this projection's failures (users, practices, memberships)."`
	Offset     int64  `name:"offset" help:"Only the failure of this ledger offset."`
	Actor      string `name:"actor" env:"WEBHOOKD_ACTOR" help:"Who retries (recorded). Defaults to the operating-system user."`
	Reason     string `name:"reason" help:"Why, e.g. the fix deployed (recorded; do not put personal data here)."`
	// The live projections' origin check (serve's settings): a retry
	// applies nothing they would refuse, and its own ledger entry is signed.
	SigningSecret  string `name:"signing-secret" env:"CLERK_WEBHOOK_SIGNING_SECRET,CLERK_WEBHOOK_SECRET" help:"Clerk's signing secret(s), as for serve: an entry not covered by a signed checkpoint is applied only if its Svix signature verifies; in development mode .webhookd/signing-secret."`
	RetiredSecrets string `name:"retired-signing-secrets" env:"WEBHOOKD_RETIRED_SIGNING_SECRETS" help:"Retired Clerk signing secrets, as for serve."`
	SigningKey     string `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve seals the ledger with (in development mode .webhookd/signing-key): it signs the retry's ledger entry and checks webhookd's own entries. Required once the ledger is sealed."`
}

// ProjectionRetried is the data of a webhookd.projection.retried ledger
// event: who retried which failures, when (the event's time), and what
// came of each.
type ProjectionRetried struct {
	// ID names what was retried: the projection, or "all".
	ID      string                    `json:"id"`
	Actor   string                    `json:"actor"`
	Reason  string                    `json:"reason,omitempty"`
	Results []projections.RetryResult `json:"results"`
}

// Run retries the selected failures, records what it did in the ledger and
// prints it. Exit status 1 when an entry failed again.
func (c *ProjectionsRetryCmd) Run(ctx context.Context, g *Globals) error {
	if c.Projection != "" {
		if _, err := projections.ByName(c.Projection); err != nil {
			return err
		}
	}
	actor := c.Actor
	if actor == "" {
		actor = osUser()
	}
	if actor == "" {
		return fmt.Errorf("the actor (who retries) is required: --actor or WEBHOOKD_ACTOR")
	}
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "projections retry", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	secrets, err := ingress.ParseSecrets(c.devSetting(conn, c.SigningSecret, devSecretFile))
	if err != nil {
		return fmt.Errorf("CLERK_WEBHOOK_SIGNING_SECRET: %w (a retry checks each entry's origin as serve does: give it serve's settings)", err)
	}
	keySetting := c.devSetting(conn, c.SigningKey, devKeyFile)
	origin, err := newOriginVerifier(secrets, c.RetiredSecrets, keySetting)
	if err != nil {
		return err
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	// Refuse before retrying anything: the retry must be recorded.
	key, err := appendSigningKey(ctx, store, keySetting)
	if err != nil {
		return err
	}
	filter := projections.FailureFilter{Projection: c.Projection, Offset: c.Offset}
	results, retryErr := projections.RetryFailures(ctx, pool, filter, projectionOrigin(origin, keySetting))
	if retryErr == nil && len(results) == 0 {
		return fmt.Errorf("%w (projection %q, offset %d); `webhookd projections failures` lists them", projections.ErrNoFailures, c.Projection, c.Offset)
	}
	// What was done is recorded even when a later entry stopped the run.
	id := c.Projection
	if id == "" {
		id = "all"
	}
	event := ProjectionRetried{ID: id, Actor: actor, Reason: c.Reason, Results: results}
	if len(results) > 0 {
		entry, err := domain.NewInternalEntry(domain.EventProjectionRetried, id, event, time.Now())
		if err != nil {
			return err
		}
		if key != nil {
			seal.SignInternalEntry(key, &entry)
		}
		if _, err := store.Append(ctx, entry); err != nil {
			return fmt.Errorf("record the retry in the ledger: %s (the retries above were applied)", domain.ErrorMessage(err))
		}
		out, _ := json.Marshal(map[string]any{"status": "recorded", "svix_id": entry.SvixID, "event_type": entry.EventType, "actor": actor, "results": results})
		fmt.Fprintln(g.stdout(), string(out))
	}
	if retryErr != nil {
		return retryErr
	}
	failed := 0
	for _, r := range results {
		if r.Outcome != projections.RetryApplied {
			fmt.Fprintf(g.stderr(), "webhookd: %s could not apply ledger offset %d again: %s\n", r.Projection, r.Offset, r.Cause)
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d entries failed again and stay in projection_failures", failed, len(results))
	}
	return nil
}
