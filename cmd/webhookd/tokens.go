package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webhookd/webhookd/admin"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
)

// TokensCmd manages the tokens of the admin API and console.
type TokensCmd struct {
	Create TokensCreateCmd `cmd:"" help:"Create a token and print it (once; only its hash is kept). Recorded in the ledger."`
	List   TokensListCmd   `cmd:"" help:"List the tokens (names, roles, when created, revoked and last used)."`
	Revoke TokensRevokeCmd `cmd:"" help:"Revoke a token and end its console sessions. Recorded in the ledger."`
}

// TokenLedger is the settings of the token commands that append.
type TokenLedger struct {
	Database
	Actor      string `name:"actor" env:"WEBHOOKD_ACTOR" help:"Who makes the change (recorded). Defaults to the operating-system user."`
	SigningKey string `name:"signing-key" env:"WEBHOOKD_SIGNING_KEY" help:"The key webhookd serve seals the ledger with (in development mode .webhookd/signing-key): the ledger entry is signed with it. Required once the ledger is sealed."`
}

// open connects and returns the tokens store; done releases it.
func (c *TokenLedger) open(ctx context.Context, command string, g *Globals) (*admin.Tokens, func(), error) {
	logger, err := g.Logger()
	if err != nil {
		return nil, nil, err
	}
	pool, conn, err := c.connect(ctx, command, g, logger, true)
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.New(pool, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	done := func() { store.Close(); conn.Close() }
	key, err := appendSigningKey(ctx, store, c.devSetting(conn, c.SigningKey, devKeyFile))
	if err != nil {
		done()
		return nil, nil, err
	}
	return &admin.Tokens{Pool: pool, Recorder: &admin.Recorder{Ledger: store, Key: key}}, done, nil
}

func (c *TokenLedger) actor() (string, error) {
	if c.Actor != "" {
		return c.Actor, nil
	}
	if u := osUser(); u != "" {
		return u, nil
	}
	return "", errors.New("the actor (who makes the change) is required: --actor or WEBHOOKD_ACTOR")
}

// TokensCreateCmd creates a token.
type TokensCreateCmd struct {
	TokenLedger
	Name string `name:"name" required:"" help:"The token's name (1 to 64 letters, digits, '.', '_', '-', '@'); recorded with every read it makes."`
	Role string `name:"role" required:"" enum:"viewer,admin" help:"viewer (search, open, timelines, redacted) or admin (also reveal with a reason, change access, export, verify)."`
}

// Run creates the token and prints it.
func (c *TokensCreateCmd) Run(ctx context.Context, g *Globals) error {
	actor, err := c.actor()
	if err != nil {
		return err
	}
	tokens, done, err := c.open(ctx, "tokens create", g)
	if err != nil {
		return err
	}
	defer done()
	token, err := tokens.Create(ctx, c.Name, c.Role, actor)
	if err != nil {
		return errors.New(tokenError(err))
	}
	fmt.Fprintf(g.stderr(), "webhookd: token %q (%s) created and recorded in the ledger. It is printed once, below; only its hash is kept.\n", c.Name, c.Role)
	fmt.Fprintln(g.stdout(), token)
	return nil
}

// tokenError is the message of a token command's error.
func tokenError(err error) string {
	if domain.ErrorCode(err) == domain.EINTERNAL {
		return err.Error()
	}
	return domain.ErrorMessage(err)
}

// TokensListCmd lists tokens.
type TokensListCmd struct {
	Database
	JSON bool `name:"json" help:"Print JSON lines instead of a table."`
}

// Run prints the tokens.
func (c *TokensListCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "tokens list", g, logger, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	list, err := listTokens(ctx, pool)
	if err != nil {
		return err
	}
	if c.JSON {
		for _, t := range list {
			b, _ := json.Marshal(t)
			fmt.Fprintln(g.stdout(), string(b))
		}
		return nil
	}
	w := tabwriter.NewWriter(g.stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROLE\tCREATED\tBY\tREVOKED\tLAST USED")
	for _, t := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.UTC().Format(time.RFC3339), t.CreatedBy, orDash(t.RevokedAt), orDash(t.LastUsedAt))
	}
	return w.Flush()
}

func listTokens(ctx context.Context, pool *pgxpool.Pool) ([]admin.Token, error) {
	return (&admin.Tokens{Pool: pool}).List(ctx)
}

func orDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// TokensRevokeCmd revokes a token.
type TokensRevokeCmd struct {
	TokenLedger
	Name string `arg:"" help:"The token's name."`
}

// Run revokes the token.
func (c *TokensRevokeCmd) Run(ctx context.Context, g *Globals) error {
	actor, err := c.actor()
	if err != nil {
		return err
	}
	tokens, done, err := c.open(ctx, "tokens revoke", g)
	if err != nil {
		return err
	}
	defer done()
	if err := tokens.Revoke(ctx, c.Name, actor); err != nil {
		return errors.New(tokenError(err))
	}
	fmt.Fprintf(g.stdout(), "token %q revoked (recorded in the ledger); its console sessions are ended\n", c.Name)
	return nil
}
