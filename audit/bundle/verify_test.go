package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

var (
	otherKey = ed25519.NewKeyFromSeed([]byte("another key, not webhookd's own!"))
	testPub  = testKey.Public().(ed25519.PublicKey)
	otherPub = otherKey.Public().(ed25519.PublicKey)
)

// export writes a bundle (to a new directory unless opts says where),
// signed with testKey unless opts names another key, and returns its
// directory or archive path.
func (l *ledger) export(opts bundle.ExportOptions) (string, bundle.Manifest) {
	l.T.Helper()
	if opts.Key == nil {
		opts.Key = testKey
	}
	return l.exportUnsigned(opts)
}

// exportUnsigned is export without signing the manifest unless opts.Key.
func (l *ledger) exportUnsigned(opts bundle.ExportOptions) (string, bundle.Manifest) {
	l.T.Helper()
	if opts.Dir == "" && opts.Archive == "" {
		opts.Dir = filepath.Join(l.T.TempDir(), "bundle")
	}
	opts.Actor = "auditor@example.com"
	if opts.Key != nil {
		// Recording the export appends an entry webhookd signs.
		opts.Record = l.Store
	}
	opts.Now = func() time.Time { return l.Now }
	m, err := bundle.Export(context.Background(), l.Store, opts)
	require.NoError(l.T, err)
	if opts.Archive != "" {
		return opts.Archive, m
	}
	return opts.Dir, m
}

// verifyBundle verifies with the trusted keys given, or testKey's.
func verifyBundle(t *testing.T, dir string, trusted ...ed25519.PublicKey) bundle.Report {
	t.Helper()
	if len(trusted) == 0 {
		trusted = []ed25519.PublicKey{testPub}
	}
	r, err := bundle.VerifyBundle(context.Background(), dir, bundle.VerifyOptions{TrustedKeys: trusted, Workers: 2})
	require.NoError(t, err)
	return r
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	out := strings.Join(lines, "")
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
}

func TestExportVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(20, "")
	cp := l.Seal()
	dir, m := l.export(bundle.ExportOptions{Key: testKey})
	require.Equal(t, 20, m.Entries)
	require.True(t, m.Complete)
	require.EqualValues(t, 0, *m.FirstIndex)
	require.EqualValues(t, 19, *m.LastIndex)
	require.Len(t, m.Files, 6) // with checkpoint.note

	r := verifyBundle(t, dir, testKey.Public().(ed25519.PublicKey))
	require.Empty(t, r.Problems)
	require.NoError(t, r.Err())
	require.Equal(t, 20, r.Entries)
	require.Equal(t, cp, r.Checkpoint)

	csv := readLines(t, filepath.Join(dir, bundle.EntriesCSVFile))
	require.Len(t, csv, 21)
	require.True(t, strings.HasPrefix(csv[0], "ledger_index,offset,leaf_hash,svix_id,"))

	// The export is recorded in the ledger as webhookd's own event.
	got, err := l.Store.Get(context.Background(), "whd_"+m.ExportID)
	require.NoError(t, err)
	require.Equal(t, domain.SourceWebhookd, got.Source)
	// signed with the key, so that the sealer takes it as webhookd's.
	require.NoError(t, verifier(t, exportSecret).Verify(got))
	_, err = l.SealVerified(verifier(t, exportSecret))
	require.NoError(t, err, "the sealer, which checks origins, seals it")
	require.EqualValues(t, 21, l.Indexed())
}

func TestExportIsRecordedOnlyWithTheSigningKey(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(2, "")
	l.Seal()
	dir := filepath.Join(t.TempDir(), "b")
	_, err := bundle.Export(context.Background(), l.Store, bundle.ExportOptions{Dir: dir, Record: l.Store})
	require.EqualError(t, err, bundle.ErrNoSigningKeyToAppend)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "refused before writing anything")
}

func TestExportFiltersAndRedaction(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(3, "")
	l.Add(4, "user_2abcdefghijklmnopqrstuvwxyz")
	l.Add(3, "")
	l.Seal()
	dir, m := l.export(bundle.ExportOptions{User: "user_2abcdefghijklmnopqrstuvwxyz", Redact: true})
	require.False(t, m.Complete)
	require.Equal(t, 4, m.Entries)
	require.Equal(t, 4, m.RedactedEntries)
	r := verifyBundle(t, dir)
	require.Empty(t, r.Problems)
	require.Equal(t, 4, r.Redacted)

	data, err := os.ReadFile(filepath.Join(dir, bundle.EntriesFile))
	require.NoError(t, err)
	require.NotContains(t, string(data), "@example.")
	require.NotContains(t, string(data), `"payload":`)
	require.Equal(t, 4, strings.Count(string(data), `"redacted":true`))
	require.Contains(t, string(data), "user_2abcdefghijklmnopqrstuvwxyz")

	_, m = l.export(bundle.ExportOptions{Types: []string{"user.deleted"}})
	require.Equal(t, 2, m.Entries)
	_, m = l.export(bundle.ExportOptions{From: time.Date(2026, 11, 27, 10, 0, 2, 0, time.UTC), To: time.Date(2026, 11, 27, 10, 0, 5, 0, time.UTC)})
	require.Equal(t, 3, m.Entries)
	require.EqualValues(t, 2, *m.FirstIndex)
}

// tamper exports 6 entries, changes the bundle and returns the report.
func tamper(t *testing.T, change func(t *testing.T, dir string)) bundle.Report {
	t.Helper()
	l := setupLedger(t)
	l.Add(6, "")
	l.Seal()
	dir, _ := l.export(bundle.ExportOptions{})
	require.Empty(t, verifyBundle(t, dir).Problems)
	change(t, dir)
	return verifyBundle(t, dir, testKey.Public().(ed25519.PublicKey))
}

func editEntry(t *testing.T, dir string, line int, edit func(e map[string]any)) {
	t.Helper()
	lines := readLines(t, filepath.Join(dir, bundle.EntriesFile))
	var e map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[line]), &e))
	edit(e)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	lines[line] = string(b) + "\n"
	writeLines(t, filepath.Join(dir, bundle.EntriesFile), lines)
}

func TestVerifyDetectsAnAlteredEntry(t *testing.T) {
	t.Parallel()
	var svixID string
	r := tamper(t, func(t *testing.T, dir string) {
		path := filepath.Join(dir, bundle.EntriesFile)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := readLines(t, path)
		var e seal.Entry
		require.NoError(t, json.Unmarshal([]byte(lines[3]), &e))
		svixID = e.SvixID
		// One byte of the raw payload.
		e.Payload = bytes.Replace(e.Payload, []byte(`"object":"event"`), []byte(`"object":"evenT"`), 1)
		b, err := json.Marshal(e)
		require.NoError(t, err)
		lines[3] = string(b) + "\n"
		writeLines(t, path, lines)
		require.NotEqual(t, string(data), strings.Join(lines, ""))
	})
	require.Len(t, r.Problems, 2)
	require.Regexp(t, fmt.Sprintf(`^entry 4 \(ledger index 3, svix_id %s\): leaf hash does not match the entry's canonical encoding \(computed [0-9a-f]{64}, stated [0-9a-f]{64}\): the entry was altered$`, svixID), r.Problems[0])
	require.Regexp(t, `^entries.jsonl: SHA-256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}$`, r.Problems[1])
	require.ErrorIs(t, r.Err(), bundle.ErrVerification)
}

func TestVerifyDetectsAnAlteredFactWithAForgedLeafHash(t *testing.T) {
	t.Parallel()
	r := tamper(t, func(t *testing.T, dir string) {
		editEntry(t, dir, 2, func(e map[string]any) {
			// Same length, so the file keeps the size the manifest says.
			require.Equal(t, "user.deleted", e["event_type"])
			e["event_type"] = "user.updated"
			var ae seal.Entry
			b, _ := json.Marshal(e)
			require.NoError(t, json.Unmarshal(b, &ae))
			e["leaf_hash"] = seal.ComputeLeafHash(&ae).String()
		})
	})
	require.Regexp(t, `^entry 3 \(ledger index 2, svix_id msg_0003\): its proof in proofs.jsonl is for leaf hash [0-9a-f]{64}, the entry states [0-9a-f]{64}$`, r.Problems[0])
}

func TestVerifyDetectsARemovedEntry(t *testing.T) {
	t.Parallel()
	r := tamper(t, func(t *testing.T, dir string) {
		for _, f := range []string{bundle.EntriesFile, bundle.ProofsFile} {
			lines := readLines(t, filepath.Join(dir, f))
			writeLines(t, filepath.Join(dir, f), append(lines[:2:2], lines[3:]...))
		}
	})
	require.Equal(t, "ledger index 2 is missing: entry 3 (ledger index 3, svix_id msg_0004) follows it", r.Problems[0])
	require.Equal(t, "entries.jsonl has 5 entries, manifest.json says 6", r.Problems[1])
}

func TestVerifyDetectsReorderedEntries(t *testing.T) {
	t.Parallel()
	r := tamper(t, func(t *testing.T, dir string) {
		for _, f := range []string{bundle.EntriesFile, bundle.ProofsFile} {
			lines := readLines(t, filepath.Join(dir, f))
			lines[1], lines[4] = lines[4], lines[1]
			writeLines(t, filepath.Join(dir, f), lines)
		}
	})
	require.Equal(t, "entry 3 (ledger index 2, svix_id msg_0003) is out of order: it comes after ledger index 4", r.Problems[0])
}

func TestVerifyDetectsAForgedCheckpoint(t *testing.T) {
	t.Parallel()
	r := tamper(t, func(t *testing.T, dir string) {
		path := filepath.Join(dir, bundle.CheckpointFile)
		var cp seal.Checkpoint
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, &cp))
		cp.TreeSize = 5
		cp.RootHash[0] ^= 1
		data, err = json.Marshal(cp)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
	})
	require.Equal(t, "checkpoint.json: checkpoint of tree size 5: signature does not verify with key "+seal.KeyID(testKey.Public().(ed25519.PublicKey)), r.Problems[0])
	require.Equal(t, "manifest.json says tree size 6, checkpoint.json 5", r.Problems[1])
}

func TestVerifyDetectsACheckpointFromAnotherKey(t *testing.T) {
	t.Parallel()
	otherID := seal.KeyID(otherKey.Public().(ed25519.PublicKey))
	resign := func(t *testing.T, dir string, alsoKeyFile bool) {
		path := filepath.Join(dir, bundle.CheckpointFile)
		var cp seal.Checkpoint
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(data, &cp))
		cp = seal.SignCheckpoint(otherKey, cp.TreeSize, cp.RootHash, cp.SignedAt)
		data, err = json.Marshal(cp)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		if alsoKeyFile {
			require.NoError(t, os.WriteFile(filepath.Join(dir, bundle.PublicKeyFile), seal.EncodePublicKeyPEM(otherKey.Public().(ed25519.PublicKey)), 0o644))
		}
	}
	r := tamper(t, func(t *testing.T, dir string) { resign(t, dir, false) })
	require.Equal(t, "public_key.pem holds key "+seal.KeyID(testKey.Public().(ed25519.PublicKey))+" but checkpoint.json is signed by key "+otherID, r.Problems[0])
	require.Equal(t, "checkpoint.json: checkpoint of tree size 6 is signed by key "+otherID+", which is not a trusted key", r.Problems[1])

	r = tamper(t, func(t *testing.T, dir string) { resign(t, dir, true) })
	require.Equal(t, "checkpoint.json: checkpoint of tree size 6 is signed by key "+otherID+", which is not a trusted key", r.Problems[0])
}

func TestVerifyLedgerDetectsARowChangedBySuperuser(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(4, "")
	l.Seal()
	l.Add(3, "")
	l.Seal()
	ctx := context.Background()
	r, err := bundle.VerifyLedger(ctx, l.Store, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
	require.NoError(t, err)
	require.Empty(t, r.Problems)
	require.Equal(t, 7, r.Entries)
	cps, err := l.Store.Checkpoints(ctx)
	require.NoError(t, err)
	require.Equal(t, len(cps), r.Checkpoints)

	var offset int64
	require.NoError(t, l.DB.Pool.QueryRow(ctx, `SELECT ledger_offset FROM ledger_index WHERE ledger_index = 2`).Scan(&offset))
	for _, q := range []string{
		`ALTER TABLE ledger_events DISABLE TRIGGER USER`,
		fmt.Sprintf(`UPDATE ledger_events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), '"object":"event"', '"object":"evenT"'), 'UTF8') WHERE "offset" = %d`, offset),
		`ALTER TABLE ledger_events ENABLE TRIGGER USER`,
	} {
		_, err := l.DB.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	r, err = bundle.VerifyLedger(ctx, l.Store, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
	require.NoError(t, err)
	require.Regexp(t, fmt.Sprintf(`^ledger index 2 \(offset %d, svix_id msg_0003\): the ledger_events row does not match its sealed leaf hash \(recomputed [0-9a-f]{64}, ledger_index has [0-9a-f]{64}\): the row was altered$`, offset), r.Problems[0])
	require.Regexp(t, `^checkpoint of tree size \d+: root [0-9a-f]{64} does not match the root [0-9a-f]{64} recomputed from ledger_events$`, r.Problems[1])
	require.ErrorIs(t, r.Err(), bundle.ErrVerification)
}

// A signed manifest: what it says of the export cannot be changed without
// the verifier noticing, and an auditor can insist on the signature.
func TestVerifyChecksTheManifestSignature(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(5, "")
	l.Seal()
	ctx := context.Background()
	dir, _ := l.export(bundle.ExportOptions{Key: testKey})
	r := verifyBundle(t, dir, testKey.Public().(ed25519.PublicKey))
	require.Empty(t, r.Problems)
	require.True(t, r.ManifestSigned)

	manifest := filepath.Join(dir, bundle.ManifestFile)
	original, err := os.ReadFile(manifest)
	require.NoError(t, err)
	keyID := seal.KeyID(testKey.Public().(ed25519.PublicKey))

	// Claiming another actor (nothing else in the bundle says who).
	edited := bytes.Replace(original, []byte(`"actor": "auditor@example.com"`), []byte(`"actor": "someone-else"`), 1)
	require.NotEqual(t, original, edited)
	require.NoError(t, os.WriteFile(manifest, edited, 0o644))
	r = verifyBundle(t, dir)
	require.Equal(t, []string{"manifest.sig: the signature does not verify over manifest.json with key " + keyID + ": the manifest was changed after the export"}, r.Problems)
	require.False(t, r.ManifestSigned)
	require.NoError(t, os.WriteFile(manifest, original, 0o644))

	// Signed by another key than the checkpoint's.
	sig, err := json.Marshal(bundle.SignManifest(otherKey, original))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, bundle.ManifestSignatureFile), sig, 0o644))
	r = verifyBundle(t, dir)
	require.Equal(t, []string{"manifest.sig is signed by key " + seal.KeyID(otherKey.Public().(ed25519.PublicKey)) + ", not by the checkpoint's key " + keyID}, r.Problems)

	// Without manifest.sig the bundle fails, unless an unsigned manifest
	// is allowed.
	require.NoError(t, os.Remove(filepath.Join(dir, bundle.ManifestSignatureFile)))
	r = verifyBundle(t, dir)
	require.Equal(t, []string{unsignedProblem}, r.Problems)
	r, err = bundle.VerifyBundle(ctx, dir, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}, AllowUnsignedManifest: true})
	require.NoError(t, err)
	require.Empty(t, r.Problems)
	require.False(t, r.ManifestSigned)

	// Export refuses a key that did not sign the checkpoint.
	_, err = bundle.Export(ctx, l.Store, bundle.ExportOptions{Dir: filepath.Join(t.TempDir(), "b"), Key: otherKey})
	require.EqualError(t, err, "the signing key (key id "+seal.KeyID(otherKey.Public().(ed25519.PublicKey))+") is not the key that signed the latest checkpoint (key id "+keyID+"): sign the export with the key webhookd serve seals with")
}

// Someone with write access to the database seals further entries with a
// key of their own: the ledger verifies only against trusted keys, and
// without one VerifyLedger refuses to run.
func TestVerifyLedgerRefusesCheckpointsSignedByAnotherKey(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(4, "")
	l.Seal()
	l.Add(2, "")
	l.SealWith(otherKey)
	ctx := context.Background()

	_, err := bundle.VerifyLedger(ctx, l.Store, bundle.VerifyOptions{})
	require.ErrorIs(t, err, bundle.ErrNoTrustedKey)

	r, err := bundle.VerifyLedger(ctx, l.Store, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
	require.NoError(t, err)
	require.Equal(t, []string{"checkpoint of tree size 6 is signed by key " + seal.KeyID(otherPub) + ", which is not a trusted key"}, r.Problems)
	require.Equal(t, seal.KeyID(otherPub), r.Checkpoint.KeyID)

	r, err = bundle.VerifyLedger(ctx, l.Store, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub, otherPub}})
	require.NoError(t, err)
	require.Empty(t, r.Problems)
}
