// Package migrations owns webhookd's database schema: numbered SQL files
// embedded in the binary, applied in order by `webhookd migrate` (or
// `webhookd serve --migrate`) and by the tests. Nothing else creates tables.
//
// Files are named NNN_name.sql and must be numbered 1, 2, 3… without gaps;
// a gap is a packaging mistake and stops every command that loads them.
// Applying is guarded by a PostgreSQL advisory lock, so several webhookd
// processes may migrate at once.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed sql/*.sql
var files embed.FS

// VersionTable is where applied versions are recorded.
const VersionTable = "webhookd_schema_migrations"

// Latest is the newest schema version this build knows.
var Latest = mustLatest()

func mustLatest() int64 {
	n, err := checkNumbering(files)
	if err != nil {
		panic(err)
	}
	return n
}

// checkNumbering returns the highest version, or an error when the files are
// not numbered 1..N without gaps or repeats.
func checkNumbering(fsys fs.FS) (int64, error) {
	entries, err := fs.Glob(fsys, "sql/*.sql")
	if err != nil {
		return 0, err
	}
	seen := map[int64]string{}
	var maxVersion int64
	for _, e := range entries {
		name := path.Base(e)
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || len(num) != 3 {
			return 0, fmt.Errorf("migration %s: name must be NNN_name.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return 0, fmt.Errorf("migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		maxVersion = max(maxVersion, v)
	}
	for v := int64(1); v <= maxVersion; v++ {
		if _, ok := seen[v]; !ok {
			return 0, fmt.Errorf("migration %03d is missing: versions must run 1..%d without gaps", v, maxVersion)
		}
	}
	return maxVersion, nil
}

func provider(ctx context.Context, db *sql.DB, logger *slog.Logger) (*goose.Provider, error) {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		return nil, err
	}
	// One lock per schema: deployments (and tests) in different schemas of
	// one database do not wait for each other.
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("webhookd migrations " + schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	return goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
}

// Up applies every migration not yet applied and returns the versions it
// applied, oldest first. When the connection's search_path names a schema
// that does not exist yet (DATABASE_URL with search_path=webhookd, say), Up
// creates it first: webhookd's tables live where search_path says.
func Up(ctx context.Context, db *sql.DB, logger *slog.Logger) ([]int64, error) {
	if err := ensureSchema(ctx, db, logger); err != nil {
		return nil, err
	}
	if v, err := Version(ctx, db); err != nil {
		return nil, err
	} else if v > Latest {
		return nil, fmt.Errorf("%w: it is at version %d, this webhookd knows up to %d; upgrade webhookd", ErrSchemaTooNew, v, Latest)
	}
	p, err := provider(ctx, db, logger)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// ensureSchema creates the first schema of search_path when no schema of
// search_path exists, so that tables are created where the user asked
// rather than failing with "no schema has been selected to create in".
// "$user" is skipped, as PostgreSQL itself does when no such schema exists.
func ensureSchema(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	var current sql.NullString
	var searchPath string
	if err := db.QueryRowContext(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&current, &searchPath); err != nil {
		return fmt.Errorf("migrate: read search_path: %w", err)
	}
	if current.Valid {
		return nil
	}
	schema := firstSchema(searchPath)
	if schema == "" {
		return fmt.Errorf("migrate: search_path %q names no schema to create webhookd's tables in; set search_path in DATABASE_URL (for example ?search_path=webhookd)", searchPath)
	}
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(schema)); err != nil {
		// Two processes creating it at once: one fails on the catalog's
		// unique index, and the schema is there all the same.
		if db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&current) == nil && current.Valid {
			return nil
		}
		return fmt.Errorf("migrate: create schema %q (named by search_path): %w", schema, err)
	}
	if logger != nil {
		logger.Info("schema_created", slog.String("schema", schema))
	}
	return nil
}

// firstSchema returns the first entry of a search_path setting other than
// "$user", unquoted ("" when there is none).
func firstSchema(searchPath string) string {
	for _, item := range strings.Split(searchPath, ",") {
		item = strings.TrimSpace(item)
		if len(item) >= 2 && item[0] == '"' && item[len(item)-1] == '"' {
			item = strings.ReplaceAll(item[1:len(item)-1], `""`, `"`)
		} else {
			item = strings.ToLower(item) // unquoted identifiers fold to lower case
		}
		if item != "" && item != "$user" {
			return item
		}
	}
	return ""
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Version returns the schema version the database is at (0 when webhookd
// never migrated it).
func Version(ctx context.Context, db *sql.DB) (int64, error) {
	var exists bool
	// to_regclass follows search_path, as goose does.
	if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT max(version_id) FROM `+VersionTable+` WHERE is_applied`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v.Int64, nil
}

// ErrSchemaOutdated and ErrSchemaTooNew are wrapped by Check.
var (
	ErrSchemaOutdated = errors.New("database schema is behind this webhookd")
	ErrSchemaTooNew   = errors.New("database schema is newer than this webhookd")
)

// Check returns nil when the database is at exactly Latest, and otherwise an
// error, one line long, saying what to do.
func Check(ctx context.Context, db *sql.DB) error {
	v, err := Version(ctx, db)
	if err != nil {
		return err
	}
	switch {
	case v < Latest:
		return fmt.Errorf("%w: it is at version %d, this webhookd needs %d; run `webhookd migrate` or start with --migrate", ErrSchemaOutdated, v, Latest)
	case v > Latest:
		return fmt.Errorf("%w: it is at version %d, this webhookd knows up to %d; upgrade webhookd", ErrSchemaTooNew, v, Latest)
	}
	return nil
}
