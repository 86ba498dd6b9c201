// Package testdb gives tests a real PostgreSQL: each test gets a fresh
// schema, migrated to the latest version, dropped when the test ends.
//
// The server is TEST_DATABASE_URL. `make test` sets it, when it is not set
// already, to a throwaway embedded PostgreSQL (internal/devdb/cmd/devpg), so
// tests need nothing but Go; a plain `go test` without it uses the local
// default postgres://postgres@127.0.0.1:5432/test.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/migrations"
)

// DefaultURL is used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL returns the URL of the test server.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// DB is one test's schema.
type DB struct {
	// URL connects to the test's schema (search_path set), for code under
	// test that opens its own pool, such as the webhookd binary.
	URL string
	// Pool is connected to the test's schema.
	Pool   *pgxpool.Pool
	Schema string
}

// New creates a fresh schema, applies the migrations and returns a pool on
// it. Everything is dropped when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	db := NewEmpty(t)
	sqlDB := stdlib.OpenDBFromPool(db.Pool)
	defer sqlDB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := migrations.Up(ctx, sqlDB, nil)
	require.NoError(t, err, "migrate test schema")
	return db
}

// NewEmpty is New without the migrations.
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	schema := "test_" + RandomSuffix()

	admin, err := pgx.Connect(ctx, ServerURL())
	require.NoError(t, err, "connect to the test PostgreSQL at %s (set TEST_DATABASE_URL, or run `make test`, which starts an embedded one)", redactURL(ServerURL()))
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	_ = admin.Close(ctx)

	u, err := url.Parse(ServerURL())
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	pool, err := pgxpool.New(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	return &DB{URL: u.String(), Pool: pool, Schema: schema}
}

// RandomSuffix returns 12 random lower-case hex digits, for names that
// parallel tests must not share.
func RandomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Pool opens a pool on url, closed when t ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// foreignDatabase is a database of the test server that no test's schema
// lives in, created once and kept (it stays empty).
const foreignDatabase = "webhookd_test_foreign"

// HoldForeignTransaction opens a transaction in another database of the
// test server and gives it a transaction id, as a BI tool or a migration
// left idle in transaction would: until t ends, it is the oldest
// transaction of the whole server (pg_snapshot_xmin of every snapshot,
// in every database, is at most its id). It returns that id.
func HoldForeignTransaction(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+foreignDatabase)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		err = nil // created already (or just now by a parallel test)
	}
	_ = admin.Close(ctx)
	require.NoError(t, err, "create database %s", foreignDatabase)

	u, err := url.Parse(ServerURL())
	require.NoError(t, err)
	u.Path = "/" + foreignDatabase
	return HoldTransaction(t, u.String())
}

// HoldTransaction opens a connection to url, begins a transaction, gives
// it a transaction id and leaves it open, idle, until t ends. It returns
// the id.
func HoldTransaction(t testing.TB, url string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	var xid uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid))
	return xid
}
