package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/webhookd/webhookd/migrations"
)

// connectTimeout bounds opening one database connection when the URL does
// not set connect_timeout, so an unreachable database fails a request (and
// start-up) in seconds rather than hanging.
const connectTimeout = 5 * time.Second

// openPool connects to databaseURL and checks that the server answers. Its
// errors are one line and never show the password.
func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL or DSN")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %v", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 2*connectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach the database at %s: %s", describeDB(cfg), connectReason(err, cfg.ConnConfig.ConnectTimeout))
	}
	return pool, nil
}

// connectReason says in a few words why a connection failed. pgx's own
// error lists every address it tried, one per line, each with the full
// chain of wrapped errors.
func connectReason(err error, timeout time.Duration) string {
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var errno syscall.Errno
	switch {
	case errors.As(err, &pgErr):
		// The server answered: authentication, a missing database, …
		return "the server refused: " + pgErr.Message
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve host %s", dnsErr.Name)
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return fmt.Sprintf("no answer within %s (connect_timeout in the URL changes it)", timeout)
	}
	// Anything else: its innermost first line.
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSpace(line)
}

// describeURL names a database given as a URL or DSN without its
// password.
func describeURL(databaseURL string) string {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return "an invalid URL"
	}
	return describeDB(cfg)
}

// describeDB names a database without its password.
func describeDB(cfg *pgxpool.Config) string {
	u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port), Path: "/" + cfg.ConnConfig.Database}
	if cfg.ConnConfig.User != "" {
		u.User = url.User(cfg.ConnConfig.User)
	}
	return u.String()
}

// sqlDB wraps pool for database/sql users (the migration library).
func sqlDB(pool *pgxpool.Pool) *sql.DB { return stdlib.OpenDBFromPool(pool) }

// openMigrated is openPool for the commands that use an existing schema:
// it also checks that the schema is at this binary's version.
func openMigrated(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	db := sqlDB(pool)
	err = migrations.Check(ctx, db)
	db.Close()
	if err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
