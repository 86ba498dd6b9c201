package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/webhookd/webhookd/domain"
)

// Position is a place in the ledger's safe order, (transaction_id,
// offset): the order in which projections read entries. The zero Position
// is before the first entry.
type Position struct {
	TxID   uint64
	Offset int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.TxID < q.TxID || (p.TxID == q.TxID && p.Offset < q.Offset)
}

// Querier runs a query: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Scanned is an entry with its position.
type Scanned struct {
	domain.LedgerEntry
	Position Position
}

// ScanAfter returns up to limit committed entries after pos in safe order
// (order.go): an entry that commits later can never sort before them.
// When upTo is not the zero Position, entries after it are left out.
//
// The query reads only the batch, in primary key order from the position,
// whatever the ledger's size: the position is compared as a row (an index
// range condition; watermill-sql's (tx = X AND offset > Y) OR tx > X is
// only a filter, and walked the index from the ledger's first row: 2.4 ms
// instead of 0.05 ms with 10,000 rows behind the position), and ORDER BY
// and LIMIT are on the query that reads the ledger. It is planned at every
// execution (pgx's QueryExecModeCacheDescribe: an unnamed statement with
// binary results), not once as a prepared statement: a plan made while
// the ledger was small (a fresh install) is a sequential scan and a sort,
// and a prepared statement keeps it for the connection's life.
func ScanAfter(ctx context.Context, q Querier, pos, upTo Position, limit int) ([]Scanned, error) {
	return scanAfter(ctx, q, pos, upTo, limit, nil, nil)
}

// ScanAfterForTypes is ScanAfter for a reader that only looks into the
// payloads of some event types (a projection): entries of every type are
// returned, in order, so that the reader's position can move past them,
// but only those whose event_type is one of types carry their Payload; the
// others have a nil Payload. The database neither sends nor the driver
// copies bodies nobody reads: three projections read every entry, and
// each applies only its own types.
//
// The entries are stored in dst's array (from its start) when it has
// room: a reader that polls in a loop passes its previous batch back, done
// with it, instead of having room for limit entries (25 kB for 100) made
// at every poll (1.5 kB allocated per event at concurrency 8).
func ScanAfterForTypes(ctx context.Context, q Querier, dst []Scanned, pos Position, limit int, types []string) ([]Scanned, error) {
	if types == nil {
		types = []string{}
	}
	// Nothing of the previous batch stays reachable through dst.
	clear(dst[:cap(dst)])
	return scanAfter(ctx, q, pos, Position{}, limit, types, dst[:0])
}

func scanAfter(ctx context.Context, q Querier, pos, upTo Position, limit int, types []string, out []Scanned) ([]Scanned, error) {
	bound := ""
	args := []any{pgx.QueryExecModeCacheDescribe, fmt.Sprint(pos.TxID), pos.Offset, limit}
	if upTo != (Position{}) {
		bound = ` AND (transaction_id, "offset") <= ($4::text::xid8, $5)`
		args = append(args, fmt.Sprint(upTo.TxID), upTo.Offset)
	}
	columns := selectColumns
	if types != nil {
		args = append(args, types)
		columns = strings.Replace(selectColumns, ` payload,`, fmt.Sprintf(` CASE WHEN event_type = ANY($%d::text[]) THEN payload END,`, len(args)-1), 1)
	}
	rows, err := q.Query(ctx, `
		SELECT `+columns+` FROM `+EventsTable+`
		WHERE `+AfterPosition(`$1::text::xid8`, `$2`)+bound+`
		ORDER BY `+SafeOrder+`
		LIMIT $3`, args...)
	if err != nil {
		return nil, translate(err, "scan ledger")
	}
	defer rows.Close()
	if out == nil {
		out = make([]Scanned, 0, limit)
	}
	for rows.Next() {
		e, pos, err := scanPositioned(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, Scanned{LedgerEntry: e, Position: pos})
	}
	return out, translate(rows.Err(), "scan ledger")
}

// ConsumerPosition reads a consumer group's position, locking its row
// until tx ends so that the consumer cannot move meanwhile. A group that
// never ran is created at the zero Position.
//
// The row is created only when the lock finds none: a projection batch
// (every few milliseconds under load) takes one round trip here, not two.
func ConsumerPosition(ctx context.Context, tx pgx.Tx, group string) (Position, error) {
	var (
		off  int64
		txID wsql.XID8
	)
	lock := func() error {
		return tx.QueryRow(ctx, `SELECT offset_acked, last_processed_transaction_id FROM `+OffsetsTable+` WHERE consumer_group = $1 FOR UPDATE`, group).Scan(&off, &txID)
	}
	err := lock()
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO `+OffsetsTable+` (consumer_group, offset_acked, last_processed_transaction_id)
			VALUES ($1, 0, '0') ON CONFLICT DO NOTHING`, group); err != nil {
			return Position{}, translate(err, "read consumer position")
		}
		err = lock()
	}
	if err != nil {
		return Position{}, translate(err, "read consumer position")
	}
	return Position{TxID: uint64(txID), Offset: off}, nil
}

// SetConsumerPosition moves a consumer group to pos.
func SetConsumerPosition(ctx context.Context, tx pgx.Tx, group string, pos Position) error {
	_, err := tx.Exec(ctx, `UPDATE `+OffsetsTable+` SET offset_acked = $2, last_processed_transaction_id = $3::text::xid8 WHERE consumer_group = $1`,
		group, pos.Offset, fmt.Sprint(pos.TxID))
	return translate(err, "set consumer position")
}

// EntryAt returns the entry at a ledger offset, or a domain.ENOTFOUND
// error.
func EntryAt(ctx context.Context, q Querier, offset int64) (domain.LedgerEntry, error) {
	rows, err := q.Query(ctx, `SELECT `+selectColumns+` FROM `+EventsTable+` WHERE "offset" = $1`, offset)
	if err != nil {
		return domain.LedgerEntry{}, translate(err, "read ledger entry")
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return domain.LedgerEntry{}, translate(err, "read ledger entry")
		}
		return domain.LedgerEntry{}, domain.Errorf(domain.ENOTFOUND, "not_found", "no ledger entry at offset %d", offset)
	}
	return scanEntry(rows)
}

// GroupLag is how far a consumer group is behind the ledger: the number of
// committed entries after its position and the receipt time of the oldest
// of them (nil when there is none). A group that never ran counts the
// whole ledger.
//
// The rows after the position are found by a range scan of the primary
// key. The position is only known at run time, so the planner guesses a
// third of the ledger and picks a full scan, which on a large ledger costs
// a second per scrape of /metrics or /readyz even when the group is
// caught up; the range scan costs what the lag is.
func GroupLag(ctx context.Context, pool *pgxpool.Pool, group string) (int64, *time.Time, error) {
	var (
		n      int64
		oldest *time.Time
	)
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
		SELECT count(*), min(received_at) FROM `+EventsTable+`
		WHERE `+AfterPosition(
			`coalesce((SELECT last_processed_transaction_id FROM `+OffsetsTable+` WHERE consumer_group = $1), '0'::xid8)`,
			`coalesce((SELECT offset_acked FROM `+OffsetsTable+` WHERE consumer_group = $1), 0)`),
			group).Scan(&n, &oldest)
	})
	if err != nil {
		return 0, nil, translate(err, "measure "+group+" lag")
	}
	return n, oldest, nil
}
