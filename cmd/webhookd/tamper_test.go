package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/internal/testdb"
)

// asSuperuser runs statements in one transaction with every trigger off
// (session_replication_role = replica), as a database superuser can.
func asSuperuser(t *testing.T, db *testdb.DB, statements ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	for _, q := range append([]string{`SET LOCAL session_replication_role = replica`}, statements...) {
		_, err := tx.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	require.NoError(t, tx.Commit(ctx))
}

// emptySealTables are the statements that empty the seal tables.
var emptySealTables = []string{`DELETE FROM ledger_cosignatures`, `DELETE FROM ledger_checkpoints`, `DELETE FROM ledger_index`}

// superuserRewrite is the attack of issue 14, as a database superuser:
// triggers off, one payload changed, the seal tables emptied.
func superuserRewrite(t *testing.T, db *testdb.DB, svixID string) {
	t.Helper()
	asSuperuser(t, db, append([]string{
		`UPDATE ledger_events SET payload = replace(convert_from(payload, 'UTF8'), '"object":"event"', '"object":"evenT"')::bytea WHERE svix_id = '` + svixID + `'`,
	}, emptySealTables...)...)
}

// superuserRemove is superuserRewrite deleting the row instead of
// altering it: what is left still proves its origin (an altered Clerk row
// no longer matches its Svix signature, and a restarted sealer refuses
// it), so only a witness can tell the re-signed history from the true one.
func superuserRemove(t *testing.T, db *testdb.DB, svixID string) {
	t.Helper()
	asSuperuser(t, db, append([]string{`DELETE FROM ledger_events WHERE svix_id = '` + svixID + `'`}, emptySealTables...)...)
}

// sealTables returns how many rows ledger_index and ledger_checkpoints hold.
func sealTables(t *testing.T, db *testdb.DB) (index, checkpoints int) {
	t.Helper()
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM ledger_index), (SELECT count(*) FROM ledger_checkpoints)`).Scan(&index, &checkpoints))
	return index, checkpoints
}

// waitIntegrityFailures waits until the log holds n sealer_integrity_failure
// lines: each is one full check of the tables by the sealer, so after
// several the sealer has had every chance to start over.
func (h *harness) waitIntegrityFailures(n int) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		return strings.Count(h.logs.String(), `"msg":"sealer_integrity_failure"`) >= n
	}, 30*time.Second, 10*time.Millisecond, "logs:\n%s", h.logs.String())
}

// The running sealer used to rebuild the index from 0 within seconds and
// sign the altered history with the real key; it now refuses, keeps
// refusing, says so on /readyz, /metrics and in the log, and the ledger
// keeps taking deliveries.
func TestSuperuserRewriteWithSealTablesEmptiedStopsTheSealer(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	h := startOn(t, db, withSeal(sealKey))
	h.deliverN(0, 6)
	h.waitCheckpoint(6)
	require.Equal(t, 0.0, scrape(t, h).value("webhookd_sealer_integrity_failure"))

	superuserRewrite(t, db, "msg_seal_003")
	h.waitIntegrityFailures(3)

	index, checkpoints := sealTables(t, db)
	require.Equal(t, []int{0, 0}, []int{index, checkpoints}, "the sealer re-sealed the altered history")
	require.NotContains(t, h.logs.String(), `"msg":"sealer_lost_leadership"`)
	line := h.logLine(`"msg":"sealer_integrity_failure"`)
	require.Equal(t, "ERROR", line["level"])
	require.Equal(t, "ledger integrity check failed: this sealer knows a signed checkpoint of tree size 6 (root "+
		h.checkpointRoot(6)+") but ledger_checkpoints holds none: checkpoints were removed", line["error"])

	a := h.get("/readyz")
	require.Equal(t, 200, a.status, "deliveries are still taken")
	require.Equal(t, "degraded", a.body["status"])
	sealer := a.body["checks"].(map[string]any)["sealer"].(map[string]any)
	require.Equal(t, "integrity_failure", sealer["state"])
	require.Equal(t, line["error"], sealer["message"])
	require.Equal(t, 1.0, scrape(t, h).value("webhookd_sealer_integrity_failure"))

	h.deliverN(6, 1) // answered 200
	h.waitIntegrityFailures(6)
	index, checkpoints = sealTables(t, db)
	require.Equal(t, []int{0, 0}, []int{index, checkpoints})
}

// checkpointRoot is the root hash of the checkpoint of size n the sealer
// signed (remembered by the harness when waitCheckpoint saw it).
func (h *harness) checkpointRoot(n int) string {
	h.t.Helper()
	root, ok := h.roots[n]
	require.True(h.t, ok, "no checkpoint of size %d was seen", n)
	return root
}

// Hostile variants: only the index cut, only the checkpoints cut, the
// tail cut (last entries' index rows and checkpoints), each caught by the
// running sealer, which then keeps the lock so that no other replica
// starts over.
func TestSealTablesCutUnderARunningSealer(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		queries []string
		message string
	}{
		"index emptied": {
			[]string{`DELETE FROM ledger_index`},
			"ledger integrity check failed: ledger_index holds 0 entries but the last checkpoint in ledger_checkpoints covers 6: index rows were removed",
		},
		"tail cut": {
			[]string{`DELETE FROM ledger_checkpoints WHERE tree_size > 3`, `DELETE FROM ledger_index WHERE ledger_index >= 3`},
			"ledger integrity check failed: this sealer knows a signed checkpoint of tree size 6 (root %s) but ledger_checkpoints holds one of tree size 3: checkpoints were removed",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			a := startOn(t, db, withSeal(sealKey))
			b := startOn(t, db, withSeal(sealKey))
			a.deliverN(0, 3)
			a.waitCheckpoint(3)
			a.deliverN(3, 3)
			a.waitCheckpoint(6)
			b.waitCheckpoint(6)
			ctx := context.Background()
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
			require.NoError(t, err)
			for _, q := range c.queries {
				_, err := tx.Exec(ctx, q)
				require.NoError(t, err, q)
			}
			require.NoError(t, tx.Commit(ctx))
			leader := a
			if strings.Contains(b.logs.String(), `"msg":"sealer_leading"`) {
				leader = b
			}
			leader.waitIntegrityFailures(3)
			msg := c.message
			if strings.Contains(msg, "%s") {
				msg = fmt.Sprintf(msg, leader.checkpointRoot(6))
			}
			require.Equal(t, msg, leader.logLine(`"msg":"sealer_integrity_failure"`)["error"])
			require.Equal(t, 1, strings.Count(a.logs.String()+b.logs.String(), `"msg":"sealer_leading"`), "the other replica took over")
			index, _ := sealTables(t, db)
			require.LessOrEqual(t, index, 3, "re-indexed")
		})
	}
}

// With WEBHOOKD_SEAL_STATE the sealer still knows its last checkpoint
// after a restart: a restarted webhookd refuses the emptied tables too.
func TestSealStateFileSurvivesARestart(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	state := filepath.Join(t.TempDir(), "seal-state")
	withState := withConfig(func(c *AppConfig) { c.Seal.StatePath = state })
	h := startOn(t, db, withSeal(sealKey), withState)
	h.deliverN(0, 5)
	h.waitCheckpoint(5)
	h.stop()
	superuserRewrite(t, db, "msg_seal_002")

	again := startOn(t, db, withSeal(sealKey), withState)
	again.waitIntegrityFailures(2)
	require.Contains(t, again.logLine(`"msg":"sealer_integrity_failure"`)["error"], "this sealer knows a signed checkpoint of tree size 5")
	index, checkpoints := sealTables(t, db)
	require.Equal(t, []int{0, 0}, []int{index, checkpoints})
}

// The same rewrite against a webhookd restarted without WEBHOOKD_SEAL_STATE
// (so its sealer remembers nothing): the altered row no longer matches the
// Svix signature it was delivered with, so the new sealer seals the rows
// before it and refuses it, instead of signing the altered history.
func TestRestartedSealerRefusesARewrittenRowByItsOrigin(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	h := startOn(t, db, withSeal(sealKey))
	h.deliverN(0, 6)
	h.waitCheckpoint(6)
	h.stop()

	superuserRewrite(t, db, "msg_seal_003")
	again := startOn(t, db, withSeal(sealKey))
	again.waitIntegrityFailures(2)
	line := again.logLine(`"msg":"sealer_integrity_failure"`)
	require.Contains(t, line["error"], "svix_id msg_seal_003")
	index, checkpoints := sealTables(t, db)
	require.Equal(t, 3, index, "only the rows before the altered one are sealed")
	var latest int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(tree_size), 0) FROM ledger_checkpoints`).Scan(&latest))
	require.Equal(t, 3, latest, "%d checkpoints", checkpoints)
	require.Equal(t, 1.0, scrape(t, again).value("webhookd_sealer_integrity_failure"))
}
