package main

import (
	"context"
	"fmt"

	"github.com/webhookd/webhookd/migrations"
)

// MigrateCmd applies the embedded migrations.
type MigrateCmd struct {
	Database
}

// Run applies every pending migration and reports the schema version.
func (c *MigrateCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, conn, err := c.connect(ctx, "migrate", g, logger, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	db := sqlDB(pool)
	defer db.Close()
	applied, err := migrations.Up(ctx, db, logger)
	if err != nil {
		return err
	}
	v, err := migrations.Version(ctx, db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(g.stdout(), "schema is up to date at version %d\n", v)
		return nil
	}
	fmt.Fprintf(g.stdout(), "applied %d migration(s); schema is at version %d\n", len(applied), v)
	return nil
}
