package eventstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// Tables written by the sealer (migrations/sql/003_seal.sql).
const (
	IndexTable       = "ledger_index"
	CheckpointsTable = "ledger_checkpoints"
)

// ErrSealConflict is wrapped by AppendLeaves and AppendCheckpoint when the
// rows they would write exist already or would leave a gap: another sealer
// wrote first.
var ErrSealConflict = errors.New("another sealer wrote first")

// UnsealedEntries returns up to limit committed entries that have no ledger
// index yet, in safe order (order.go): those after the last indexed entry.
// A row that commits later sorts after them, so none is ever skipped.
func (s *Store) UnsealedEntries(ctx context.Context, limit int) ([]domain.LedgerEntry, error) {
	q := `
	WITH last AS (
		SELECT e.transaction_id AS tx, e."offset" AS off
		FROM ` + IndexTable + ` i JOIN ` + EventsTable + ` e ON e."offset" = i.ledger_offset
		ORDER BY i.ledger_index DESC LIMIT 1
	)
	SELECT ` + selectColumns + ` FROM ` + EventsTable + `
	WHERE ` + AfterPosition(`coalesce((SELECT tx FROM last), '0'::xid8)`, `coalesce((SELECT off FROM last), 0)`) + `
	ORDER BY ` + SafeOrder + `
	LIMIT $1`
	rows, err := s.pool.Query(ctx, q, limit)
	if err != nil {
		return nil, translate(err, "read unsealed ledger entries")
	}
	defer rows.Close()
	var out []domain.LedgerEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, translate(rows.Err(), "read unsealed ledger entries")
}

func scanEntry(row pgx.Row, extra ...any) (domain.LedgerEntry, error) {
	e, _, err := scanPositioned(row, extra...)
	return e, err
}

// scanPositioned scans a row of selectColumns (then extra) into an entry
// and its position in safe order.
func scanPositioned(row pgx.Row, extra ...any) (domain.LedgerEntry, Position, error) {
	var (
		e       rowEntry
		txID    wsql.XID8
		uuid    string
		payload []byte
		meta    []byte
	)
	dest := append([]any{&e.offset, &txID, &uuid, &payload, &meta, &e.svixID, &e.source, &e.svixTimestamp, &e.signature,
		&e.eventType, &e.subjectID, &e.instanceID, &e.eventTime, &e.timestampUnit, &e.receivedAt, &e.sourceIP}, extra...)
	if err := row.Scan(dest...); err != nil {
		return domain.LedgerEntry{}, Position{}, translate(err, "scan ledger entry")
	}
	return e.entry(payload), Position{TxID: uint64(txID), Offset: e.offset}, nil
}

// LeafHashes returns every stored leaf hash in ledger index order.
func (s *Store) LeafHashes(ctx context.Context) ([]merkle.Hash, error) {
	var out []merkle.Hash
	err := s.ForEachLeafHash(ctx, func(leaf merkle.Hash) error {
		out = append(out, leaf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ForEachLeafHash calls fn with every stored leaf hash in ledger index
// order, as the rows arrive; it stops at fn's first error and returns it.
func (s *Store) ForEachLeafHash(ctx context.Context, fn func(leaf merkle.Hash) error) error {
	rows, err := s.pool.Query(ctx, `SELECT ledger_index, leaf_hash FROM `+IndexTable+` ORDER BY ledger_index`)
	if err != nil {
		return translate(err, "read leaf hashes")
	}
	defer rows.Close()
	var (
		idx, next int64
		leaf      []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&idx, &leaf}, func() error {
		if idx != next {
			return fmt.Errorf("ledger_index has a gap: index %d follows %d", idx, next-1)
		}
		if len(leaf) != merkle.HashSize {
			return fmt.Errorf("ledger_index %d: leaf hash has %d bytes", idx, len(leaf))
		}
		next++
		return fn(merkle.Hash(leaf))
	})
	if err != nil {
		return translate(err, "read leaf hashes")
	}
	return nil
}

// AppendLeaves stores ledger indexes first, first+1, … for the entries at
// offsets, with their leaf hashes, in one transaction. It fails wrapping
// ErrSealConflict if an index or offset is taken or first is not the next
// index.
func (s *Store) AppendLeaves(ctx context.Context, first uint64, offsets []int64, leaves []merkle.Hash) error {
	if len(offsets) != len(leaves) {
		return fmt.Errorf("append leaves: %d offsets, %d leaves", len(offsets), len(leaves))
	}
	idx := make([]int64, len(offsets))
	hashes := make([][]byte, len(leaves))
	for i := range offsets {
		idx[i] = int64(first) + int64(i)
		hashes[i] = leaves[i][:]
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+IndexTable+` (ledger_index, ledger_offset, leaf_hash)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) ORDER BY 1`, idx, offsets, hashes)
	if isConflict(err) {
		return fmt.Errorf("append leaves from index %d: %w", first, ErrSealConflict)
	}
	return translate(err, "append leaves")
}

func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23000")
}

// AppendCheckpoint stores a signed checkpoint. It fails wrapping
// ErrSealConflict if one of that tree size exists.
func (s *Store) AppendCheckpoint(ctx context.Context, c seal.Checkpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+CheckpointsTable+` (tree_size, root_hash, signed_at, key_id, public_key, signature, origin, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, int64(c.TreeSize), c.RootHash[:], c.SignedAt, c.KeyID, []byte(c.PublicKey), c.Signature,
		nullIfEmpty(c.Origin), nullIfEmpty(c.Note))
	if isConflict(err) {
		return fmt.Errorf("checkpoint of tree size %d: %w", c.TreeSize, ErrSealConflict)
	}
	return translate(err, "append checkpoint")
}

const checkpointColumns = `tree_size, root_hash, signed_at, key_id, public_key, signature, coalesce(origin, ''), coalesce(note, '')`

func scanCheckpoint(row pgx.Row) (seal.Checkpoint, error) {
	var (
		c          seal.Checkpoint
		size       int64
		root, pub  []byte
		signedAt   time.Time
		keyID      string
		signatures []byte
	)
	if err := row.Scan(&size, &root, &signedAt, &keyID, &pub, &signatures, &c.Origin, &c.Note); err != nil {
		return c, err
	}
	c.TreeSize = uint64(size)
	copy(c.RootHash[:], root)
	c.SignedAt = signedAt.UTC()
	c.KeyID = keyID
	c.PublicKey = pub
	c.Signature = signatures
	return c, nil
}

// Checkpoints returns every checkpoint, smallest tree first.
func (s *Store) Checkpoints(ctx context.Context) ([]seal.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+checkpointColumns+` FROM `+CheckpointsTable+` ORDER BY tree_size`)
	if err != nil {
		return nil, translate(err, "read checkpoints")
	}
	defer rows.Close()
	var out []seal.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return nil, translate(err, "read checkpoints")
		}
		out = append(out, c)
	}
	return out, translate(rows.Err(), "read checkpoints")
}

// LatestCheckpoint returns the checkpoint of the largest tree, or a
// domain.ENOTFOUND error when there is none.
func (s *Store) LatestCheckpoint(ctx context.Context) (seal.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, `SELECT `+checkpointColumns+` FROM `+CheckpointsTable+` ORDER BY tree_size DESC LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, domain.Errorf(domain.ENOTFOUND, "no_checkpoint", "the ledger has no checkpoint yet")
	}
	return c, translate(err, "read latest checkpoint")
}

// SealLag is how far sealing is behind the ledger.
type SealLag struct {
	// TreeSize is the size of the latest signed checkpoint (0 before the
	// first).
	TreeSize uint64
	// OldestUncovered is when the first committed entry that no
	// checkpoint covers was received; nil when every entry is covered.
	OldestUncovered *time.Time
}

// SealLag finds the first entry in safe order that the latest checkpoint
// does not cover: the one at ledger index TreeSize if the sealer indexed
// it, else the first unindexed entry after the last indexed one. Both are
// primary-key lookups, so a scrape costs the same however far behind
// sealing is.
func (s *Store) SealLag(ctx context.Context) (SealLag, error) {
	var (
		size   *int64
		oldest *time.Time
	)
	err := s.pool.QueryRow(ctx, `
	WITH cp AS (
		SELECT tree_size FROM `+CheckpointsTable+` ORDER BY tree_size DESC LIMIT 1
	), last AS (
		SELECT e.transaction_id AS tx, e."offset" AS off
		FROM `+IndexTable+` i JOIN `+EventsTable+` e ON e."offset" = i.ledger_offset
		ORDER BY i.ledger_index DESC LIMIT 1
	)
	SELECT (SELECT tree_size FROM cp), coalesce(
		(SELECT e.received_at FROM `+IndexTable+` i JOIN `+EventsTable+` e ON e."offset" = i.ledger_offset
		 WHERE i.ledger_index = coalesce((SELECT tree_size FROM cp), 0)),
		(SELECT received_at FROM `+EventsTable+`
		 WHERE `+AfterPosition(`coalesce((SELECT tx FROM last), '0'::xid8)`, `coalesce((SELECT off FROM last), 0)`)+`
		 ORDER BY `+SafeOrder+` LIMIT 1))`).Scan(&size, &oldest)
	if err != nil {
		return SealLag{}, translate(err, "measure seal lag")
	}
	lag := SealLag{OldestUncovered: oldest}
	if size != nil {
		lag.TreeSize = uint64(*size)
	}
	return lag, nil
}

// EachSealed calls fn for each sealed entry q selects, in index order.
func (s *Store) EachSealed(ctx context.Context, q bundle.Selection, fn func(bundle.SealedRow) error) error {
	where, args := selectionWhere(q)
	rows, err := s.pool.Query(ctx, `SELECT `+selectColumnsE+`, i.ledger_index, i.leaf_hash
		FROM `+IndexTable+` i JOIN `+EventsTable+` e ON e."offset" = i.ledger_offset
		WHERE `+where+` ORDER BY i.ledger_index`, args...)
	if err != nil {
		return translate(err, "read sealed entries")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx  int64
			leaf []byte
		)
		e, err := scanEntry(rows, &idx, &leaf)
		if err != nil {
			return err
		}
		if err := fn(bundle.SealedRow{Index: uint64(idx), LeafHash: merkle.Hash(leaf), Entry: e}); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "read sealed entries")
}

// SealedIndexRange returns the lowest and highest index q selects
// (ok false when none).
func (s *Store) SealedIndexRange(ctx context.Context, q bundle.Selection) (first, last uint64, ok bool, err error) {
	where, args := selectionWhere(q)
	var lo, hi *int64
	err = s.pool.QueryRow(ctx, `SELECT min(i.ledger_index), max(i.ledger_index)
		FROM `+IndexTable+` i JOIN `+EventsTable+` e ON e."offset" = i.ledger_offset WHERE `+where, args...).Scan(&lo, &hi)
	if err != nil || lo == nil {
		return 0, 0, false, translate(err, "read sealed index range")
	}
	return uint64(*lo), uint64(*hi), true, nil
}

func selectionWhere(q bundle.Selection) (string, []any) {
	cond := "true"
	var args []any
	add := func(c string, v any) {
		args = append(args, v)
		cond += fmt.Sprintf(" AND "+c, len(args))
	}
	if q.Below > 0 {
		add("i.ledger_index < $%d", int64(q.Below))
	}
	if q.HasIndexRange {
		add("i.ledger_index >= $%d", int64(q.FirstIndex))
		add("i.ledger_index <= $%d", int64(q.LastIndex))
	}
	if !q.ReceivedFrom.IsZero() {
		add("e.received_at >= $%d", q.ReceivedFrom)
	}
	if !q.ReceivedTo.IsZero() {
		add("e.received_at < $%d", q.ReceivedTo)
	}
	if q.User != "" {
		args = append(args, q.User)
		cond += fmt.Sprintf(` AND (e.subject_id = $%d OR position(convert_to($%d, 'UTF8') in e.payload) > 0)`, len(args), len(args))
	}
	if len(q.Types) > 0 {
		add("e.event_type = ANY($%d)", q.Types)
	}
	return cond, args
}

// selectColumnsE is selectColumns qualified with the events table's alias e.
const selectColumnsE = `e."offset", e.transaction_id, e.uuid, e.payload, e.metadata, e.svix_id, e.source, e.svix_timestamp, e.signature, e.event_type, e.subject_id, e.instance_id, e.event_time, e.timestamp_unit, e.received_at, host(e.source_ip)`

// EachLedgerRow calls fn with every ledger row and its ledger index and
// stored leaf hash (indexed false for a row not sealed yet), in index order
// then offset order. verify --db uses it to recompute every leaf.
func (s *Store) EachLedgerRow(ctx context.Context, fn func(e domain.LedgerEntry, index uint64, leaf merkle.Hash, indexed bool) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+selectColumnsE+`, i.ledger_index, i.leaf_hash
		FROM `+EventsTable+` e LEFT JOIN `+IndexTable+` i ON e."offset" = i.ledger_offset
		ORDER BY i.ledger_index NULLS LAST, e."offset"`)
	if err != nil {
		return translate(err, "read ledger")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx  *int64
			leaf []byte
		)
		e, err := scanEntry(rows, &idx, &leaf)
		if err != nil {
			return err
		}
		var h merkle.Hash
		copy(h[:], leaf)
		if err := fn(e, uint64(derefOr(idx)), h, idx != nil); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "read ledger")
}

// EachIndexedFrom calls fn with every indexed entry from ledger index first
// on, with its index and stored leaf hash, in index order. The sealer uses
// it at restore for the entries indexed after the last checkpoint.
func (s *Store) EachIndexedFrom(ctx context.Context, first uint64, fn func(e domain.LedgerEntry, index uint64, leaf merkle.Hash) error) error {
	all := bundle.Selection{FirstIndex: first, LastIndex: math.MaxInt64, HasIndexRange: true}
	return s.EachSealed(ctx, all, func(r bundle.SealedRow) error { return fn(r.Entry, r.Index, r.LeafHash) })
}

func derefOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// IndexedCount returns how many entries have a ledger index.
func (s *Store) IndexedCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+IndexTable).Scan(&n)
	return n, translate(err, "count sealed entries")
}

// LeaderLock is leadership among replicas for one job (the sealer, the
// NATS forwarder): a session advisory lock held on a connection of its
// own, so it is released when the process or its connection dies.
type LeaderLock struct {
	conn *pgx.Conn
	key  int64
	held bool
}

// SealerLock is the sealer's LeaderLock.
type SealerLock = LeaderLock

// NewSealerLock opens the sealer's lock (NewLeaderLock "sealer").
func (s *Store) NewSealerLock(ctx context.Context) (*SealerLock, error) {
	return s.NewLeaderLock(ctx, "sealer")
}

// NewLeaderLock opens the lock's dedicated connection. The lock key is
// derived from job and the schema, so each job has one leader and
// deployments in different schemas of one database each have their own.
func (s *Store) NewLeaderLock(ctx context.Context, job string) (*LeaderLock, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, translate(err, "open "+job+" lock connection")
	}
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		_ = conn.Close(ctx)
		return nil, translate(err, "open "+job+" lock connection")
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("webhookd " + job + " " + schema))
	return &LeaderLock{conn: conn, key: int64(h.Sum64() >> 1)}, nil
}

// TryAcquire takes the lock if no other session holds it.
func (l *LeaderLock) TryAcquire(ctx context.Context) (bool, error) {
	if l.held {
		return true, nil
	}
	err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&l.held)
	return l.held, translate(err, "take leader lock")
}

// Check fails when the lock's connection is gone (and with it the lock).
func (l *LeaderLock) Check(ctx context.Context) error {
	return translate(l.conn.Ping(ctx), "leader lock connection")
}

// Close releases the lock by closing its connection.
func (l *LeaderLock) Close(ctx context.Context) error {
	l.held = false
	return l.conn.Close(ctx)
}

// UnindexedBehind counts the committed entries that sort at or before the
// last indexed entry (in safe order) but have no ledger index, and returns
// the offsets of the first limit of them. The sealer indexes in safe order,
// so there are none unless a row was inserted behind its position, which
// only a client with the ledger's triggers disabled can do (order.go).
//
// The count compares two numbers: the rows at or before the last indexed
// position (an index-only range scan of the primary key) and the last
// ledger index + 1 (indexes are gapless). Only when they differ are the
// rows named, with an anti-join.
func (s *Store) UnindexedBehind(ctx context.Context, limit int) (int64, []int64, error) {
	const last = `
	WITH last AS (
		SELECT e.transaction_id AS tx, e."offset" AS off, i.ledger_index AS idx
		FROM ` + IndexTable + ` i JOIN ` + EventsTable + ` e ON e."offset" = i.ledger_offset
		ORDER BY i.ledger_index DESC LIMIT 1
	)`
	var n int64
	err := s.pool.QueryRow(ctx, last+`
	SELECT (SELECT count(*) FROM `+EventsTable+`
	        WHERE (transaction_id, "offset") <= ((SELECT tx FROM last), (SELECT off FROM last)))
	     - coalesce((SELECT idx FROM last) + 1, 0)`).Scan(&n)
	if err != nil {
		return 0, nil, translate(err, "count entries behind the sealed position")
	}
	if n == 0 {
		return 0, nil, nil
	}
	if n < 0 {
		return 0, nil, fmt.Errorf("%w: ledger_index holds %d more entries than the ledger has up to the last indexed one", seal.ErrIntegrity, -n)
	}
	rows, err := s.pool.Query(ctx, last+`
	SELECT e."offset" FROM `+EventsTable+` e
	WHERE (e.transaction_id, e."offset") <= ((SELECT tx FROM last), (SELECT off FROM last))
	  AND NOT EXISTS (SELECT 1 FROM `+IndexTable+` i WHERE i.ledger_offset = e."offset")
	ORDER BY e.transaction_id, e."offset" LIMIT $1`, limit)
	if err != nil {
		return 0, nil, translate(err, "find entries behind the sealed position")
	}
	offsets, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, nil, translate(err, "find entries behind the sealed position")
	}
	return n, offsets, nil
}

// CheckpointedOffsets returns which of offsets belong to entries that the
// latest signed checkpoint covers (a ledger index below its tree size).
// The sealer checks an entry's origin before it indexes it, so such an
// entry's origin was checked when it was sealed (or it was sealed before
// webhookd checked origins); the projections accept it without its
// signature verifying now, e.g. after the Clerk secret that signed it was
// retired.
func CheckpointedOffsets(ctx context.Context, q Querier, offsets []int64) (map[int64]bool, error) {
	rows, err := q.Query(ctx, `SELECT i.ledger_offset FROM `+IndexTable+` i
		WHERE i.ledger_offset = ANY($1)
		  AND i.ledger_index < (SELECT coalesce(max(tree_size), 0) FROM `+CheckpointsTable+`)`, offsets)
	if err != nil {
		return nil, translate(err, "read checkpointed entries")
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, translate(err, "read checkpointed entries")
	}
	out := make(map[int64]bool, len(found))
	for _, o := range found {
		out[o] = true
	}
	return out, nil
}
