package seal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
)

// A row indexed after the last checkpoint by someone else (another sealer
// that wrote first, or a hand with the database) is checked when a sealer
// restores, before it could sign it into a checkpoint: a forged row, or
// an index row whose leaf hash is not the entry's, is an integrity
// failure. (Before, a restoring sealer trusted such index rows and signed
// them.)
func TestRestoreChecksEntriesIndexedAfterTheLastCheckpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		leaf func(good merkle.Hash) merkle.Hash
		want string
	}{
		{"forged row, its own leaf hash", func(good merkle.Hash) merkle.Hash { return good }, "does not prove its origin"},
		{"forged row, another leaf hash", func(merkle.Hash) merkle.Hash { return merkle.LeafHash([]byte("x")) }, "was indexed after the last checkpoint with leaf hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := setupLedger(t)
			ctx := context.Background()
			at := time.Now().UTC()
			l.addClerk(3, at)
			cp, err := l.SealVerified(verifier(t, newSecret))
			require.NoError(t, err)
			require.EqualValues(t, 3, cp.TreeSize)

			forged := clerkEntry(t, forgerSecret, "user.updated", "user_victim", 99, at)
			off := l.insertRaw(forged)
			forged.Offset = off
			stored, err := l.Store.UnsealedEntries(ctx, 10)
			require.NoError(t, err)
			require.Len(t, stored, 1)
			entry := seal.EntryFromLedger(stored[0])
			require.NoError(t, l.Store.AppendLeaves(ctx, 3, []int64{off}, []merkle.Hash{tc.leaf(seal.ComputeLeafHash(&entry))}))

			_, err = l.SealVerified(verifier(t, newSecret))
			require.ErrorIs(t, err, seal.ErrIntegrity)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "ledger index 3")
			latest, err := l.Store.LatestCheckpoint(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 3, latest.TreeSize, "the forged row was signed into a checkpoint")
		})
	}
}
