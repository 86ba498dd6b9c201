package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/internal/clerkfake"
	"github.com/webhookd/webhookd/internal/testdb"
)

// witnessKey is a witness's key pair: the private key (note form) and the
// cosignature verifier key.
type witnessKey struct{ skey, vkey string }

func newWitnessKey(t *testing.T, name string) witnessKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	require.NoError(t, err)
	vkey, err = fnote.VKeyToCosignatureV1(vkey)
	require.NoError(t, err)
	return witnessKey{skey, vkey}
}

// testWitness is a witness process's state: its key, state file and log.
type testWitness struct {
	t     *testing.T
	key   witnessKey
	state string
	logs  *syncBuffer
}

func newTestWitness(t *testing.T, name string) *testWitness {
	return &testWitness{t: t, key: newWitnessKey(t, name), state: filepath.Join(t.TempDir(), "witness-state"), logs: &syncBuffer{}}
}

// round runs one witness round against h, as `webhookd witness --once`
// would, with the log key h publishes.
func (w *testWitness) round(h *harness) (uint64, error) {
	w.t.Helper()
	cmd := &WitnessCmd{LogURL: h.base, LogKey: h.verifierKey(), Key: w.key.skey, State: w.state, Once: true}
	wit, err := cmd.witness(slog.New(slog.NewJSONHandler(w.logs, nil)))
	require.NoError(w.t, err)
	return wit.Once(context.Background())
}

// verifierKey is the note verifier key GET /ledger/checkpoint.json shows.
func (h *harness) verifierKey() string {
	h.t.Helper()
	a := h.get(CheckpointJSONPath)
	require.Equal(h.t, 200, a.status)
	return a.body["verifier_key"].(string)
}

func withWitnesses(keys ...witnessKey) option {
	return func(c *AppConfig) {
		var vkeys []string
		for _, k := range keys {
			vkeys = append(vkeys, k.vkey)
		}
		c.Seal.WitnessKeys = strings.Join(vkeys, " ")
	}
}

func TestWitnessCosignsCheckpointsThatExtendTheLastOne(t *testing.T) {
	t.Parallel()
	w := newTestWitness(t, "auditor.example/witness")
	h := start(t, withSeal(sealKey), withWitnesses(w.key))
	h.deliverN(0, 4)
	h.waitCheckpoint(4)
	size, err := w.round(h)
	require.NoError(t, err)
	require.EqualValues(t, 4, size)
	fi, err := os.Stat(w.state)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	h.deliverN(4, 3)
	h.waitCheckpoint(7)
	size, err = w.round(h)
	require.NoError(t, err)
	require.EqualValues(t, 7, size)
	require.Contains(t, w.logs.String(), `"msg":"checkpoint_cosigned","origin":"webhookd/`+seal.KeyID(sealKey.Public().(ed25519PublicKey))+`","tree_size":7`)

	// webhookd stored the cosignature and serves the cosigned note, which
	// standard tools open with the witness's key.
	resp := h.getRaw(CheckpointPath)
	v, err := fnote.NewVerifierForCosignatureV1(w.key.vkey)
	require.NoError(t, err)
	n, err := note.Open(resp, note.VerifierList(v))
	require.NoError(t, err)
	require.Equal(t, "webhookd/"+seal.KeyID(sealKey.Public().(ed25519PublicKey))+"\n7\n", n.Text[:strings.LastIndex(strings.TrimSuffix(n.Text, "\n"), "\n")+1])
	a := h.get(CheckpointJSONPath)
	cosigs := a.body["cosignatures"].([]any)
	require.Len(t, cosigs, 1)
	require.Equal(t, "auditor.example/witness", cosigs[0].(map[string]any)["witness"])
	var stored int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_cosignatures`).Scan(&stored))
	require.Equal(t, 2, stored, "sizes 4 and 7")

	// The export carries the cosignature; verify --witness requires it.
	h.stop()
	g := &Globals{LogFormat: "json", LogLevel: "error"}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, (&ExportCmd{Database: Database{URL: h.db.URL}, Out: dir, Actor: "auditor", SigningKey: sealKeyText}).Run(ctx, g))
	pub := filepath.Join(dir, bundle.PublicKeyFile)
	r, err := bundle.VerifyBundle(ctx, dir, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{sealKey.Public().(ed25519.PublicKey)}, Witnesses: mustWitnessKeys(t, w.key.vkey)})
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, printVerifyReport(&out, r, false, "--public-key"))
	require.Regexp(t, `^OK: 7 entries .*; cosigned by every witness given\n$`, out.String())
	require.NoError(t, (&VerifyCmd{Bundle: dir, PublicKey: []string{pub}, Witness: []string{w.key.vkey}}).Run(ctx, g))
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText, Witness: []string{w.key.vkey}, Checkpoint: []string{w.state}}).Run(ctx, g))
	other := newWitnessKey(t, "auditor.example/witness")
	err = (&VerifyCmd{Bundle: dir, PublicKey: []string{pub}, Witness: []string{w.key.vkey, other.vkey}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, `^verification failed: checkpoint.note: checkpoint of tree size 7 has no valid cosignature by witness auditor.example/witness \(key hash [0-9a-f]{8}\): no cosignature$`, err.Error())
	err = (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText, Witness: []string{other.vkey}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	// A cosignature line changed in the bundle fails too.
	noteFile := filepath.Join(dir, bundle.CheckpointNoteFile)
	data, err := os.ReadFile(noteFile)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	sig := lines[len(lines)-1]
	lines[len(lines)-1] = sig[:len(sig)-6] + "AAAAA="
	require.NoError(t, os.WriteFile(noteFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	err = (&VerifyCmd{Bundle: dir, PublicKey: []string{pub}, Witness: []string{w.key.vkey}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Contains(t, err.Error(), "checkpoint.note: signed note: ")

	h = startOn(t, h.db, withSeal(sealKey), withWitnesses(w.key))
	// A cosignature by a key webhookd does not know is refused, and so is
	// a note that is not one of its checkpoints.
	stranger := newTestWitness(t, "stranger")
	_, err = stranger.round(h)
	require.ErrorContains(t, err, "the log refused the cosignature: 400 Bad Request")
	require.ErrorContains(t, err, `"reason":"no_known_witness"`)
	state, err := os.ReadFile(w.state)
	require.NoError(t, err)
	forged := bytes.Replace(state, []byte("\n7\n"), []byte("\n99\n"), 1) // no such checkpoint
	answer := h.postRaw(CosignaturesPath, forged)
	require.Equal(t, 404, answer.status, "%v", answer.body)
	forged = bytes.Replace(state, []byte("\n7\n"), []byte("\n4\n"), 1)
	answer = h.postRaw(CosignaturesPath, forged)
	require.Equal(t, 400, answer.status, "%v", answer.body)
	require.Equal(t, "invalid_cosignature", answer.body["reason"])
}

func (h *harness) getRaw(path string) []byte {
	h.t.Helper()
	resp, err := httpGet(h.base + path)
	require.NoError(h.t, err)
	return resp
}

func (h *harness) postRaw(path string, body []byte) answer {
	h.t.Helper()
	return h.post(h.base+path, map[string][]string{"Content-Type": {"text/plain"}}, body)
}

// The superuser rewrite, then a restart without WEBHOOKD_SEAL_STATE: the
// new sealer knows nothing and signs the rewritten history with the real
// key; the witness refuses it as a fork and keeps its state. (The rewrite
// removes a row and a new delivery takes its place: an altered row would
// fail its origin check and the sealer would refuse it by itself.)
func TestWitnessRefusesTheResignedHistoryAfterASuperuserRewrite(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	w := newTestWitness(t, "witness")
	h := startOn(t, db, withSeal(sealKey), withWitnesses(w.key))
	h.deliverN(0, 6)
	h.waitCheckpoint(6)
	_, err := w.round(h)
	require.NoError(t, err)
	before, err := os.ReadFile(w.state)
	require.NoError(t, err)
	h.stop()

	superuserRemove(t, db, "msg_seal_003")
	again := startOn(t, db, withSeal(sealKey), withWitnesses(w.key))
	again.deliverN(6, 1)
	again.waitCheckpoint(6)
	_, err = w.round(again)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
	require.Regexp(t, `^witness refused the checkpoint: fork: the log offers tree size 6 with root [0-9a-f]{64} but this witness cosigned root [0-9a-f]{64} for that size$`, err.Error())
	line := logLineIn(t, w.logs.String(), `"msg":"witness_refused"`)
	require.Equal(t, "ERROR", line["level"])
	require.Equal(t, "fork", line["reason"])
	after, err := os.ReadFile(w.state)
	require.NoError(t, err)
	require.Equal(t, before, after, "the witness kept its state")

	// verify --db with the witness, or with its state file, fails; without
	// them the re-signed ledger verifies.
	g := &Globals{LogFormat: "json", LogLevel: "error"}
	ctx := context.Background()
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: db.URL}, SigningKey: sealKeyText}).Run(ctx, g))
	err = (&VerifyCmd{DB: true, Database: Database{URL: db.URL}, SigningKey: sealKeyText, Witness: []string{w.key.vkey}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, `^verification failed: latest checkpoint of tree size 6 has no valid cosignature by witness witness \(key hash [0-9a-f]{8}\): no cosignature$`, err.Error())
	err = (&VerifyCmd{DB: true, Database: Database{URL: db.URL}, SigningKey: sealKeyText, Checkpoint: []string{w.state}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, `^verification failed: .*witness-state: a checkpoint of tree size 6 had root [0-9a-f]{64}, the ledger's entries now give [0-9a-f]{64}: entries were altered, removed or reordered$`, err.Error())

	// One more entry: the re-signed tree of 7 is not consistent with the
	// 6 the witness cosigned.
	again.deliverN(7, 1)
	again.waitCheckpoint(7)
	_, err = w.round(again)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
	require.Contains(t, err.Error(), "fork: tree size 7 (root ")
	require.Contains(t, err.Error(), "is not consistent with tree size 6")

	// The one-shot command exits non-zero.
	err = (&WitnessCmd{LogURL: again.base, LogKey: again.verifierKey(), Key: w.key.skey, State: w.state, Once: true}).Run(context.Background(), g)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
}

// The tail cut: the last entries removed with their index rows and
// checkpoints, webhookd restarted. The witness refuses the smaller tree.
func TestWitnessRefusesATailCut(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	w := newTestWitness(t, "witness")
	h := startOn(t, db, withSeal(sealKey), withWitnesses(w.key))
	h.deliverN(0, 3)
	h.waitCheckpoint(3)
	h.deliverN(3, 3)
	h.waitCheckpoint(6)
	_, err := w.round(h)
	require.NoError(t, err)
	h.stop()
	cutTail(t, db, 3)

	again := startOn(t, db, withSeal(sealKey), withWitnesses(w.key))
	_, err = w.round(again)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
	require.Regexp(t, `^witness refused the checkpoint: rollback: the log offers tree size 3 \(root [0-9a-f]{64}\) but this witness cosigned tree size 6 \(root [0-9a-f]{64}\)$`, err.Error())

	// verify --db with the witness's checkpoint catches it; without, the
	// cut ledger verifies.
	g := &Globals{LogFormat: "json", LogLevel: "error"}
	ctx := context.Background()
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: db.URL}, SigningKey: sealKeyText}).Run(ctx, g))
	err = (&VerifyCmd{DB: true, Database: Database{URL: db.URL}, SigningKey: sealKeyText, Checkpoint: []string{w.state}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, `^verification failed: .*witness-state: a checkpoint of tree size 6 \(root [0-9a-f]{64}\) was seen, but the ledger has only 3 sealed entries: entries or index rows were removed$`, err.Error())
}

// cutTail removes, as a superuser, every ledger entry from ledger index
// keep on, with its index row, and the checkpoints beyond keep.
func cutTail(t *testing.T, db *testdb.DB, keep int) {
	t.Helper()
	asSuperuser(t, db,
		`CREATE TEMP TABLE cut ON COMMIT DROP AS SELECT ledger_offset FROM ledger_index WHERE ledger_index >= `+itoa(int64(keep)),
		`DELETE FROM ledger_cosignatures WHERE tree_size > `+itoa(int64(keep)),
		`DELETE FROM ledger_checkpoints WHERE tree_size > `+itoa(int64(keep)),
		`DELETE FROM ledger_index WHERE ledger_index >= `+itoa(int64(keep)),
		`DELETE FROM ledger_events WHERE "offset" IN (SELECT ledger_offset FROM cut)`,
	)
}

// Two webhookd on two schemas, with the same key, share a history of 4
// entries and then diverge: one witness cosigns the first's tree of 5 and
// refuses the second's (same size, other root; then not consistent).
func TestOneWitnessRefusesTheSecondOfTwoForkedLedgers(t *testing.T) {
	t.Parallel()
	w := newTestWitness(t, "witness")
	a := start(t, withSeal(sealKey), withWitnesses(w.key))
	b := start(t, withSeal(sealKey), withWitnesses(w.key))
	b.now = a.now // the same received_at: the same leaves
	for i := range 4 {
		body := clerkfake.MustBuild("user.created", clerkfake.Options{Seed: int64(i), Time: a.now, UserID: fmt.Sprintf("user_shared%d", i)})
		for _, h := range []*harness{a, b} {
			require.Equal(t, 200, h.deliver(fmt.Sprintf("msg_shared_%d", i), body).status)
		}
	}
	require.Equal(t, a.waitCheckpoint(4)["root_hash"], b.waitCheckpoint(4)["root_hash"], "the same history")
	_, err := w.round(b) // the witness saw the shared history through b
	require.NoError(t, err)

	a.deliverN(10, 1)
	b.deliverN(20, 1)
	a.waitCheckpoint(5)
	b.waitCheckpoint(5)
	size, err := w.round(a)
	require.NoError(t, err, "a extends what the witness saw")
	require.EqualValues(t, 5, size)

	_, err = w.round(b)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
	require.Contains(t, err.Error(), "fork: the log offers tree size 5 with root ")
	b.deliverN(21, 1)
	b.waitCheckpoint(6)
	_, err = w.round(b)
	require.ErrorIs(t, err, seal.ErrWitnessRefused)
	require.Contains(t, err.Error(), "fork: tree size 6 (root ")
	require.Equal(t, 2, strings.Count(w.logs.String(), `"msg":"witness_refused"`))

	// a goes on, and the witness with it.
	a.deliverN(11, 1)
	a.waitCheckpoint(6)
	size, err = w.round(a)
	require.NoError(t, err)
	require.EqualValues(t, 6, size)
}

func logLineIn(t *testing.T, logs, s string) map[string]any {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}}
	_, _ = h.logs.Write([]byte(logs))
	return h.logLine(s)
}

type ed25519PublicKey = ed25519.PublicKey

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func mustWitnessKeys(t *testing.T, vkeys ...string) []note.Verifier {
	t.Helper()
	v, err := seal.ParseWitnessKeys(strings.Join(vkeys, " "))
	require.NoError(t, err)
	return v
}
