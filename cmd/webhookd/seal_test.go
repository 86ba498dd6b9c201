package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

var sealKey = ed25519.NewKeyFromSeed([]byte("webhookd test checkpoint key 32b"))

func withSeal(key ed25519.PrivateKey) option {
	return func(c *AppConfig) {
		c.Seal = SealConfig{SigningKey: base64.StdEncoding.EncodeToString(key.Seed()), Interval: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	}
}

// deliverN posts n realistic events, numbered from first.
func (h *harness) deliverN(first, n int) {
	h.t.Helper()
	for i := first; i < first+n; i++ {
		body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: int64(i), Time: h.now})
		a := h.deliver(fmt.Sprintf("msg_seal_%03d", i), body)
		require.Equal(h.t, 200, a.status, "answer: %v", a.body)
	}
}

// waitCheckpoint waits until GET /ledger/checkpoint shows a tree of size.
func (h *harness) waitCheckpoint(size int) map[string]any {
	h.t.Helper()
	var cp map[string]any
	require.Eventually(h.t, func() bool {
		a := h.get(CheckpointPath)
		require.Equal(h.t, 200, a.status)
		cp, _ = a.body["checkpoint"].(map[string]any)
		return cp != nil && cp["tree_size"] == float64(size)
	}, 30*time.Second, 10*time.Millisecond)
	return cp
}

func TestOneSealerLeadsAcrossReplicasAndAnotherTakesOver(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	a := startOn(t, db, withSeal(sealKey))
	b := startOn(t, db, withSeal(sealKey))
	a.deliverN(0, 10)
	b.deliverN(10, 10)
	a.waitCheckpoint(20)
	b.waitCheckpoint(20)

	leaders := strings.Count(a.logs.String(), `"msg":"sealer_leading"`) + strings.Count(b.logs.String(), `"msg":"sealer_leading"`)
	require.Equal(t, 1, leaders)
	requireGaplessIndex(t, db, 20)

	leader, follower := a, b
	if strings.Contains(b.logs.String(), `"msg":"sealer_leading"`) {
		leader, follower = b, a
	}
	leader.stop()
	follower.deliverN(20, 5)
	cp := follower.waitCheckpoint(25)
	require.Contains(t, follower.logs.String(), `"msg":"sealer_leading"`)
	requireGaplessIndex(t, db, 25)

	answer := follower.get(CheckpointPath)
	require.Equal(t, base64.StdEncoding.EncodeToString(sealKey.Public().(ed25519.PublicKey)), answer.body["public_key"])
	require.Equal(t, audit.KeyID(sealKey.Public().(ed25519.PublicKey)), cp["key_id"])
}

func requireGaplessIndex(t *testing.T, db *testdb.DB, n int) {
	t.Helper()
	var count, maxIndex, offsets int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT count(*), max(ledger_index), count(DISTINCT ledger_offset) FROM ledger_index`).Scan(&count, &maxIndex, &offsets))
	require.Equal(t, []int{n, n - 1, n}, []int{count, maxIndex, offsets})
}

func TestServeWithoutSigningKeyWarnsOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	require.Equal(t, 1, strings.Count(h.logs.String(), `"msg":"sealer_disabled"`))
	require.Equal(t, 404, h.get(CheckpointPath).status)
}

func TestExportThenVerifyCommands(t *testing.T) {
	t.Parallel()
	h := start(t, withSeal(sealKey))
	h.deliverN(0, 12)
	h.waitCheckpoint(12)
	h.stop()

	g := &Globals{LogFormat: "json", LogLevel: "error"}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, (&ExportCmd{DatabaseURL: h.db.URL, Out: dir, Actor: "auditor"}).Run(ctx, g))
	pem := filepath.Join(dir, audit.PublicKeyFile)
	require.NoError(t, (&VerifyCmd{Bundle: dir, PublicKey: []string{pem}}).Run(ctx, g))
	require.NoError(t, (&VerifyCmd{DB: true, DatabaseURL: h.db.URL}).Run(ctx, g))

	// The export is in the ledger (not sealed yet: no sealer runs now).
	var n int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_events WHERE event_type = 'webhookd.export.created' AND source = 'webhookd' AND svix_id LIKE 'whd_%'`).Scan(&n))
	require.Equal(t, 1, n)

	other := ed25519.NewKeyFromSeed([]byte("someone else's key, 32 bytes...."))
	err := (&VerifyCmd{Bundle: dir, PublicKey: []string{base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))}}).Run(ctx, g)
	require.EqualError(t, err, "verification failed: checkpoint.json: checkpoint of tree size 12 is signed by key "+audit.KeyID(sealKey.Public().(ed25519.PublicKey))+", which is not a trusted key")

	var offset int64
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT ledger_offset FROM ledger_index WHERE ledger_index = 5`).Scan(&offset))
	for _, q := range []string{
		`ALTER TABLE ledger_events DISABLE TRIGGER USER`,
		fmt.Sprintf(`UPDATE ledger_events SET payload = payload || '\x20'::bytea WHERE "offset" = %d`, offset),
		`ALTER TABLE ledger_events ENABLE TRIGGER USER`,
	} {
		_, err := h.db.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	err = (&VerifyCmd{DB: true, DatabaseURL: h.db.URL}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, fmt.Sprintf(`^verification failed: ledger index 5 \(offset %d, svix_id msg_seal_005\): the ledger_events row does not match its sealed leaf hash`, offset), err.Error())
}
