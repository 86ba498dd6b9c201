package eventstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// CosignaturesTable holds witness cosignatures on checkpoints
// (migrations/sql/006_witness.sql).
const CosignaturesTable = "ledger_cosignatures"

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CheckpointAt returns the checkpoint of tree size size, or a
// domain.ENOTFOUND error.
func (s *Store) CheckpointAt(ctx context.Context, size uint64) (seal.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, `SELECT `+checkpointColumns+` FROM `+CheckpointsTable+` WHERE tree_size = $1`, int64(size)))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, domain.Errorf(domain.ENOTFOUND, "no_checkpoint", "the ledger has no checkpoint of that tree size")
	}
	return c, translate(err, "read checkpoint")
}

// AppendCosignatures stores cosignatures (their checkpoint must be
// stored); one already stored (same tree size, witness and key) is left as
// it is. It returns how many were new.
func (s *Store) AppendCosignatures(ctx context.Context, cosigs []seal.Cosignature) (int, error) {
	n := 0
	for _, c := range cosigs {
		tag, err := s.pool.Exec(ctx, `INSERT INTO `+CosignaturesTable+` (tree_size, witness, key_hash, signature)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, int64(c.TreeSize), c.Witness, int64(c.KeyHash), c.Signature)
		if err != nil {
			return n, translate(err, "append cosignature")
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// Cosignatures returns the cosignatures stored for the checkpoint of tree
// size size, first received first.
func (s *Store) Cosignatures(ctx context.Context, size uint64) ([]seal.Cosignature, error) {
	rows, err := s.pool.Query(ctx, `SELECT tree_size, witness, key_hash, signature, received_at FROM `+CosignaturesTable+`
		WHERE tree_size = $1 ORDER BY received_at, witness, key_hash`, int64(size))
	if err != nil {
		return nil, translate(err, "read cosignatures")
	}
	defer rows.Close()
	var out []seal.Cosignature
	for rows.Next() {
		var (
			c          seal.Cosignature
			size, hash int64
		)
		if err := rows.Scan(&size, &c.Witness, &hash, &c.Signature, &c.ReceivedAt); err != nil {
			return nil, translate(err, "read cosignatures")
		}
		c.TreeSize, c.KeyHash, c.ReceivedAt = uint64(size), uint32(hash), c.ReceivedAt.UTC()
		out = append(out, c)
	}
	return out, translate(rows.Err(), "read cosignatures")
}
