package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
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
		a := h.get(CheckpointJSONPath)
		require.Equal(h.t, 200, a.status)
		cp, _ = a.body["checkpoint"].(map[string]any)
		return cp != nil && cp["tree_size"] == float64(size)
	}, 30*time.Second, 10*time.Millisecond)
	if h.roots == nil {
		h.roots = map[int]string{}
	}
	h.roots[size], _ = cp["root_hash"].(string)
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

	answer := follower.get(CheckpointJSONPath)
	require.Equal(t, base64.StdEncoding.EncodeToString(sealKey.Public().(ed25519.PublicKey)), answer.body["public_key"])
	require.Equal(t, seal.KeyID(sealKey.Public().(ed25519.PublicKey)), cp["key_id"])
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
	require.Equal(t, 404, h.get(CheckpointJSONPath).status)
	require.False(t, scrape(t, h).has("webhookd_ledger_unsealed_seconds"), "no seal metrics where nothing seals")
}

// /metrics shows how long the oldest entry has waited for a checkpoint,
// and the size of the latest one.
func TestMetricsShowHowLongEntriesWaitForACheckpoint(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	var skew atomic.Int64 // nanoseconds
	base := time.Now().UTC().Truncate(time.Second)
	config := withConfig(func(c *AppConfig) {
		c.Now = func() time.Time { return base.Add(time.Duration(skew.Load())) }
		// No checkpoint within the test but the last one, at stop.
		c.Seal = SealConfig{SigningKey: sealKeyText, Interval: time.Hour, PollInterval: 10 * time.Millisecond}
	})
	h := startOn(t, db, config)
	h.now = base
	// sealSeries scrapes h until the seal lag was measured (up 1: a scrape
	// whose query misses its 2 s deadline under load reports up 0, as
	// documented) and returns up, tree size and unsealed seconds.
	sealSeries := func(h *harness) []float64 {
		var out []float64
		require.Eventually(t, func() bool {
			m := scrape(t, h)
			for _, name := range []string{"webhookd_ledger_unsealed_up", "webhookd_ledger_checkpoint_tree_size", "webhookd_ledger_unsealed_seconds"} {
				require.True(t, m.has(name), name)
			}
			out = []float64{m.value("webhookd_ledger_unsealed_up"), m.value("webhookd_ledger_checkpoint_tree_size"), m.value("webhookd_ledger_unsealed_seconds")}
			return out[0] == 1
		}, 20*time.Second, 50*time.Millisecond)
		return out
	}
	require.Equal(t, []float64{1, 0, 0}, sealSeries(h), "empty ledger")

	h.deliverN(0, 3)
	skew.Store(int64(90 * time.Second))
	require.Equal(t, []float64{1, 0, 90}, sealSeries(h))

	// Stopping signs a last checkpoint of what the sealer has indexed.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_index`).Scan(&n))
		return n == 3
	}, 10*time.Second, 10*time.Millisecond)
	h.stop()
	again := startOn(t, db, config)
	require.Equal(t, []float64{1, 3, 0}, sealSeries(again))
}

// exportedBundle seals 12 delivered events, stops webhookd and exports
// them into a bundle directory with the export command.
func exportedBundle(t *testing.T) (*harness, *Globals, string) {
	t.Helper()
	h := start(t, withSeal(sealKey))
	h.deliverN(0, 12)
	h.waitCheckpoint(12)
	h.stop()
	// Reports go to a buffer (printVerifyReport's "FAIL: …" lines must not
	// reach go test's output, where they read as failures).
	g, out := testGlobals()
	dir := filepath.Join(t.TempDir(), "bundle")
	require.NoError(t, (&ExportCmd{Database: Database{URL: h.db.URL}, Out: dir, Actor: "auditor", SigningKey: sealKeyText}).Run(context.Background(), g))
	require.Contains(t, out.String(), `"entries": 12,`, "the manifest is printed")
	out.Reset()
	return h, g, dir
}

// sealKeyText is sealKey as WEBHOOKD_SIGNING_KEY takes it.
var sealKeyText = base64.StdEncoding.EncodeToString(sealKey.Seed())

// Exported without the signing key, the manifest is not signed: verify
// refuses it unless --allow-unsigned-manifest, and then says so.
func TestUnsignedManifestIsRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	h, g, dir := exportedBundle(t)
	ctx := context.Background()
	err := (&ExportCmd{Database: Database{URL: h.db.URL}, Out: filepath.Join(t.TempDir(), "unsigned"), Actor: "auditor"}).Run(ctx, g)
	require.EqualError(t, err, bundle.ErrNoSigningKeyToAppend)
	require.NoError(t, os.Remove(filepath.Join(dir, bundle.ManifestSignatureFile)))

	out := g.Stdout.(*syncBuffer)
	err = (&VerifyCmd{Bundle: dir, SigningKey: sealKeyText}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.EqualError(t, err, "verification failed: the bundle has no manifest.sig: its manifest is not signed, so what it says of the export (range, completeness, counts, file hashes) is not authenticated and the bundle may have been cut short (--allow-unsigned-manifest accepts it)")
	require.Regexp(t, `^FAIL: 0 entries .* signed by key `+sealKeyID+` \(the public half of WEBHOOKD_SIGNING_KEY\)\n  the bundle has no manifest.sig`, out.String())

	out.Reset()
	require.NoError(t, (&VerifyCmd{Bundle: dir, SigningKey: sealKeyText, AllowUnsignedManifest: true}).Run(ctx, g))
	require.Regexp(t, `^OK: 12 entries \(0 redacted, inclusion only\) against checkpoint tree size 12 signed by key `+sealKeyID+` \(the public half of WEBHOOKD_SIGNING_KEY\); manifest NOT signed \(--allow-unsigned-manifest\): what it says of the export \(actor, range, completeness, counts\) is not authenticated\n$`, out.String())

	// The flag old scripts pass is still accepted: a signed manifest is the
	// default anyway.
	require.ErrorIs(t, (&VerifyCmd{Bundle: dir, SigningKey: sealKeyText, RequireSignedManifest: true}).Run(ctx, g), errVerifyFailed)

	// A key other than the one that sealed the ledger is refused.
	other := filepath.Join(t.TempDir(), "other")
	err = (&ExportCmd{Database: Database{URL: h.db.URL}, Out: other, SigningKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}).Run(ctx, g)
	require.ErrorContains(t, err, "is not the key that signed the latest checkpoint")
}

// sealKeyID is sealKey's fingerprint (key id).
var sealKeyID = seal.KeyID(sealKey.Public().(ed25519.PublicKey))

func TestExportThenVerifyCommands(t *testing.T) {
	t.Parallel()
	h, g, dir := exportedBundle(t)
	ctx := context.Background()
	pem := filepath.Join(dir, bundle.PublicKeyFile)
	out := g.Stdout.(*syncBuffer)
	require.NoError(t, (&VerifyCmd{Bundle: dir, PublicKey: []string{pem}}).Run(ctx, g))
	require.Equal(t, "OK: 12 entries (0 redacted, inclusion only) against checkpoint tree size 12 signed by key "+sealKeyID+" (--public-key); manifest signed by the same key\n", out.String())
	out.Reset()
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText}).Run(ctx, g))
	require.Regexp(t, `^OK: 12 sealed entries, \d+ checkpoints \(latest tree size 12, signed by key `+sealKeyID+` \(the public half of WEBHOOKD_SIGNING_KEY\)\), 1 entries not sealed yet\n$`, out.String())

	// No key to trust: refused, for a bundle and for the database.
	noKey := "verify needs a key to trust: give --public-key (the key GET /ledger/checkpoint publishes), --trust-file (WEBHOOKD_TRUST_FILE), or WEBHOOKD_SIGNING_KEY; for a bundle, --trust-bundle-key trusts the key it carries (proves it intact, not who made it)"
	require.EqualError(t, (&VerifyCmd{Bundle: dir}).Run(ctx, g), noKey)
	require.EqualError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}}).Run(ctx, g), noKey)
	require.EqualError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, TrustBundleKey: true}).Run(ctx, g),
		"--trust-bundle-key is for bundles: verify --db needs --public-key, --trust-file or WEBHOOKD_SIGNING_KEY")

	// A trust file: comments, a key that is not this one, then this one.
	other := ed25519.NewKeyFromSeed([]byte("someone else's key, 32 bytes...."))
	otherB64 := base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))
	pemData, err := os.ReadFile(pem)
	require.NoError(t, err)
	trust := filepath.Join(t.TempDir(), "trusted-keys")
	require.NoError(t, os.WriteFile(trust, []byte("# webhookd keys\n"+otherB64+" # old key\n"+string(pemData)), 0o600))
	out.Reset()
	require.NoError(t, (&VerifyCmd{Bundle: dir, TrustFile: trust}).Run(ctx, g))
	require.Contains(t, out.String(), "signed by key "+sealKeyID+" (--trust-file "+trust+")")
	out.Reset()
	require.NoError(t, (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, TrustFile: trust}).Run(ctx, g))
	require.NoError(t, os.WriteFile(trust, []byte("# nothing\n"), 0o600))
	require.EqualError(t, (&VerifyCmd{Bundle: dir, TrustFile: trust}).Run(ctx, g), "--trust-file "+trust+": holds no public key")

	// --trust-bundle-key: accepted, and the key it trusted is named.
	out.Reset()
	require.NoError(t, (&VerifyCmd{Bundle: dir, TrustBundleKey: true}).Run(ctx, g))
	require.Contains(t, out.String(), "signed by key "+sealKeyID+" (the bundle's own key, trusted with --trust-bundle-key: this proves the bundle intact, not who made it)")
	require.EqualError(t, (&VerifyCmd{Bundle: dir, TrustBundleKey: true, PublicKey: []string{pem}}).Run(ctx, g),
		"--trust-bundle-key trusts whatever key the bundle carries: give it or --public-key/--trust-file, not both")

	// The export is in the ledger (not sealed yet: no sealer runs now).
	var n int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ledger_events WHERE event_type = 'webhookd.export.created' AND source = 'webhookd' AND svix_id LIKE 'whd_%'`).Scan(&n))
	require.Equal(t, 1, n)

	err = (&VerifyCmd{Bundle: dir, PublicKey: []string{otherB64}}).Run(ctx, g)
	require.EqualError(t, err, "verification failed: checkpoint.json: checkpoint of tree size 12 is signed by key "+sealKeyID+", which is not a trusted key")
	err = (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, PublicKey: []string{otherB64}}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, `^verification failed: checkpoint of tree size \d+ is signed by key `+sealKeyID+`, which is not a trusted key$`, err.Error())

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
	out.Reset()
	err = (&VerifyCmd{DB: true, Database: Database{URL: h.db.URL}, SigningKey: sealKeyText}).Run(ctx, g)
	require.ErrorIs(t, err, errVerifyFailed)
	require.Regexp(t, fmt.Sprintf(`^verification failed: ledger index 5 \(offset %d, svix_id msg_seal_005\): the ledger_events row does not match its sealed leaf hash`, offset), err.Error())
	require.Regexp(t, `^FAIL: 12 sealed entries, \d+ checkpoints \(latest tree size 12, signed by key `+sealKeyID+` \(the public half of WEBHOOKD_SIGNING_KEY\)\), 1 entries not sealed yet\n  ledger index 5 `, out.String())
}

// rewriteArchive rewrites the gzip'd tar archive at path with each entry's
// data passed through change.
func rewriteArchive(t *testing.T, path string, change func(name string, data []byte) []byte) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var buf bytes.Buffer
	gzw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gzw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		data = change(hdr.Name, data)
		hdr.Size = int64(len(data))
		require.NoError(t, tw.WriteHeader(hdr))
		_, err = tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	require.NoError(t, tw.Close())
	require.NoError(t, gzw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

// alterEntry6 changes one byte of the payload of the sixth line of
// entries.jsonl (ledger index 5).
func alterEntry6(t *testing.T, data []byte) []byte {
	t.Helper()
	lines := strings.SplitAfter(string(data), "\n")
	var e seal.Entry
	require.NoError(t, json.Unmarshal([]byte(lines[5]), &e))
	e.Payload = bytes.Replace(e.Payload, []byte(`"object":"event"`), []byte(`"object":"evenT"`), 1)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	lines[5] = string(b) + "\n"
	return []byte(strings.Join(lines, ""))
}

func TestExportArchiveThenVerifyCommands(t *testing.T) {
	t.Parallel()
	h, g, dir := exportedBundle(t)
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, (&ExportCmd{Database: Database{URL: h.db.URL}, Out: archive, Actor: "auditor", SigningKey: sealKeyText}).Run(ctx, g))
	fi, err := os.Stat(archive)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
	pem := filepath.Join(dir, bundle.PublicKeyFile)
	require.NoError(t, (&VerifyCmd{Bundle: archive, PublicKey: []string{pem}}).Run(ctx, g))

	// The same OK line as for the directory.
	var lines []string
	for _, path := range []string{dir, archive} {
		out := g.Stdout.(*syncBuffer)
		out.Reset()
		require.NoError(t, (&VerifyCmd{Bundle: path, PublicKey: []string{pem}}).Run(ctx, g))
		lines = append(lines, out.String())
	}
	require.Equal(t, lines[0], lines[1])
	require.Equal(t, "OK: 12 entries (0 redacted, inclusion only) against checkpoint tree size 12 signed by key "+sealKeyID+" (--public-key); manifest signed by the same key\n", lines[1])

	// One byte changed inside an entry: the same failure, naming the entry.
	entries := filepath.Join(dir, bundle.EntriesFile)
	data, err := os.ReadFile(entries)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(entries, alterEntry6(t, data), 0o644))
	rewriteArchive(t, archive, func(name string, data []byte) []byte {
		if name == bundle.EntriesFile {
			return alterEntry6(t, data)
		}
		return data
	})
	dirErr := (&VerifyCmd{Bundle: dir, PublicKey: []string{pem}}).Run(ctx, g)
	archiveErr := (&VerifyCmd{Bundle: archive, PublicKey: []string{pem}}).Run(ctx, g)
	require.ErrorIs(t, archiveErr, errVerifyFailed)
	require.Regexp(t, `^verification failed: entry 6 \(ledger index 5, svix_id msg_seal_005\): leaf hash does not match the entry's canonical encoding .*: the entry was altered$`, archiveErr.Error())
	require.Equal(t, dirErr.Error(), archiveErr.Error())

	// An entry that climbs out of the extraction directory.
	evil := filepath.Join(t.TempDir(), "evil.tgz")
	var buf bytes.Buffer
	gzw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gzw)
	require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../x", Mode: 0o644, Size: 5}))
	_, err = tw.Write([]byte("owned"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gzw.Close())
	require.NoError(t, os.WriteFile(evil, buf.Bytes(), 0o644))
	err = (&VerifyCmd{Bundle: evil, PublicKey: []string{pem}}).Run(ctx, g)
	require.ErrorIs(t, err, bundle.ErrBadArchive)
	require.NotErrorIs(t, err, errVerifyFailed)
	require.EqualError(t, err, evil+`: not a valid bundle archive: entry "../x" climbs out of the bundle (..)`)
}
