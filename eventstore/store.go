package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/domain"
)

// Store appends to and reads from the ledger.
type Store struct {
	cfg       Config
	pool      *pgxpool.Pool
	publisher *wsql.Publisher

	queue   chan *appendRequest
	writers sync.WaitGroup
	mu      sync.RWMutex // held (shared) while sending to queue; Close takes it
	closed  bool
}

// Config configures a Store.
type Config struct {
	// Logger receives Watermill's log lines. Defaults to none.
	Logger watermill.LoggerAdapter
	// MaxBatch is the most appends one INSERT (one transaction) carries.
	// Defaults to DefaultMaxBatch.
	MaxBatch int
	// Writers is how many batches may be written at once. Defaults to
	// DefaultWriters.
	Writers int
	// Flushed, when set, is called after each batch INSERT with the
	// number of entries, the time it took and its error.
	Flushed func(entries int, took time.Duration, err error)
	// Conflicted, when set, is called for every append whose svix-id the
	// ledger holds with a different body, after that body was recorded in
	// ledger_conflicts. The append itself reports a duplicate.
	Conflicted func(Conflict)
}

// New returns a Store on pool with the default Config and logger. The
// schema must already be migrated.
func New(pool *pgxpool.Pool, logger watermill.LoggerAdapter) (*Store, error) {
	return NewWithConfig(pool, Config{Logger: logger})
}

// NewWithConfig returns a Store on pool. The schema must already be
// migrated. Close stops its writers.
func NewWithConfig(pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Writers <= 0 {
		cfg.Writers = DefaultWriters
	}
	pub, err := wsql.NewPublisher(countingExecutor{wsql.BeginnerFromPgx(pool)}, wsql.PublisherConfig{
		SchemaAdapter: LedgerSchema{},
	}, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("ledger publisher: %w", err)
	}
	s := &Store{cfg: cfg, pool: pool, publisher: pub, queue: make(chan *appendRequest, cfg.MaxBatch*cfg.Writers)}
	s.writers.Add(cfg.Writers)
	for range cfg.Writers {
		go s.write()
	}
	return s, nil
}

// translate turns a driver error into a domain error: EUNAVAILABLE when
// the database cannot be reached or is overloaded (the caller should retry
// later), EINVALID when it refused a value of the request itself (retrying
// the same request can never succeed, so it must not be a 5xx that Svix
// retries for a day), EINTERNAL otherwise.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	if IsUnavailable(err) {
		return &domain.Error{Code: domain.EUNAVAILABLE, Reason: "database_unavailable", Message: "the ledger database is unavailable; retry later", Err: fmt.Errorf("%s: %w", op, err)}
	}
	if code, ok := RejectedValue(err); ok {
		return &domain.Error{Code: domain.EINVALID, Reason: "value_rejected",
			Message: fmt.Sprintf("the ledger database cannot store a value of this event (SQLSTATE %s); retrying will not help", code),
			Err:     fmt.Errorf("%s: %w", op, err)}
	}
	return &domain.Error{Code: domain.EINTERNAL, Reason: "database_error", Message: "internal error", Err: fmt.Errorf("%s: %w", op, err)}
}

// RejectedValue reports whether err is PostgreSQL refusing a value the
// statement carried, which it will refuse every time: a data exception
// (SQLSTATE class 22: a time out of range, a NUL or invalid UTF-8 in text,
// a malformed value) or a program limit (class 54: a value too large for
// an index row). It returns the SQLSTATE, which is safe to show.
func RejectedValue(err error) (sqlstate string, ok bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "54") {
		return pgErr.Code, true
	}
	return "", false
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
