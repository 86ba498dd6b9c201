package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/domain"
)

// svixIDConstraint is the unique index that makes svix-id the idempotency
// key (migrations/sql/001_ledger.sql).
const svixIDConstraint = "ledger_events_svix_id_key"

// Store appends to and reads from the ledger.
type Store struct {
	pool      *pgxpool.Pool
	publisher *wsql.Publisher
}

// New returns a Store on pool. The schema must already be migrated.
func New(pool *pgxpool.Pool, logger watermill.LoggerAdapter) (*Store, error) {
	pub, err := wsql.NewPublisher(wsql.BeginnerFromPgx(pool), wsql.PublisherConfig{
		SchemaAdapter: LedgerSchema{},
	}, logger)
	if err != nil {
		return nil, fmt.Errorf("ledger publisher: %w", err)
	}
	return &Store{pool: pool, publisher: pub}, nil
}

// Close stops accepting appends and waits for those in flight.
func (s *Store) Close() error { return s.publisher.Close() }

// Append stores e durably (the insert has committed when Append returns
// nil). If e.SvixID is already in the ledger, including when another append
// of the same id is racing this one, it stores nothing and reports
// Duplicate.
func (s *Store) Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error) {
	msg := NewMessage(e)
	msg.SetContext(ctx)
	err := s.publisher.Publish(Topic, msg)
	if err == nil {
		return domain.AppendResult{}, nil
	}
	if isUniqueViolation(err, svixIDConstraint) {
		return domain.AppendResult{Duplicate: true}, nil
	}
	return domain.AppendResult{}, translate(err, "append to ledger")
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// translate turns a driver error into a domain error: EUNAVAILABLE when
// the database cannot be reached or is overloaded (the caller should retry
// later), EINTERNAL otherwise.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	if IsUnavailable(err) {
		return &domain.Error{Code: domain.EUNAVAILABLE, Reason: "database_unavailable", Message: "the ledger database is unavailable; retry later", Err: fmt.Errorf("%s: %w", op, err)}
	}
	return &domain.Error{Code: domain.EINTERNAL, Reason: "database_error", Message: "internal error", Err: fmt.Errorf("%s: %w", op, err)}
}

// IsUnavailable reports whether err means the database could not be
// reached or refused work for now (as opposed to rejecting the statement).
func IsUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "53": // insufficient resources
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, cannot connect now
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true
	case pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.Is(err, pgx.ErrTxClosed):
		return true
	}
	return false
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate(s.pool.Ping(ctx), "ping")
}

// Get returns the entry with the given svix-id, or a domain.ENOTFOUND
// error.
func (s *Store) Get(ctx context.Context, svixID string) (domain.LedgerEntry, error) {
	e, err := scanEntry(s.pool.QueryRow(ctx, `SELECT `+selectColumns+` FROM `+EventsTable+` WHERE svix_id = $1`, svixID))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.LedgerEntry{}, domain.Errorf(domain.ENOTFOUND, "not_found", "no ledger entry with svix-id %q", svixID)
	}
	return e, err
}

// Count returns the number of entries in the ledger.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+EventsTable).Scan(&n)
	return n, translate(err, "count ledger entries")
}
