package main

import (
	"context"
	"fmt"

	"github.com/webhookd/webhookd/migrations"
)

// MigrateCmd applies the embedded migrations.
type MigrateCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL URL (DATABASE_URL)."`
}

// Run applies every pending migration and reports the schema version.
func (c *MigrateCmd) Run(ctx context.Context, g *Globals) error {
	logger, err := g.Logger()
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
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
		fmt.Printf("schema is up to date at version %d\n", v)
		return nil
	}
	fmt.Printf("applied %d migration(s); schema is at version %d\n", len(applied), v)
	return nil
}
