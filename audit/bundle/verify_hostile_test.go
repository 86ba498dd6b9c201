//go:build unix

package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
)

// unsignedProblem is what a bundle without manifest.sig fails with.
const unsignedProblem = "the bundle has no manifest.sig: its manifest is not signed, so what it says of the export (range, completeness, counts, file hashes) is not authenticated and the bundle may have been cut short (--allow-unsigned-manifest accepts it)"

// syntheticBundle writes a bundle of n generated entries, with no database,
// checkpoint and manifest signed by key, into a new directory (or archive
// when archive is set) and returns its path.
func syntheticBundle(t *testing.T, n int, key ed25519.PrivateKey, archive bool) string {
	t.Helper()
	opts := bundle.ExportOptions{Actor: "auditor@example.com", Key: key, ID: "export-1"}
	path := filepath.Join(t.TempDir(), "bundle")
	if archive {
		path += ".tar.gz"
		opts.Archive = path
	} else {
		opts.Dir = path
	}
	_, err := bundle.Export(context.Background(), newSyntheticLedgerSignedBy(n, key), opts)
	require.NoError(t, err)
	return path
}

// syntheticArchive is a signed synthetic bundle archive (manifest signed
// when signed).
func syntheticArchive(t *testing.T, n int, signed bool) string {
	t.Helper()
	if signed {
		return syntheticBundle(t, n, testKey, true)
	}
	opts := bundle.ExportOptions{Actor: "auditor@example.com", Archive: filepath.Join(t.TempDir(), "bundle.tgz")}
	_, err := bundle.Export(context.Background(), newSyntheticLedger(n), opts)
	require.NoError(t, err)
	return opts.Archive
}

func trusting(keys ...ed25519.PublicKey) bundle.VerifyOptions {
	return bundle.VerifyOptions{TrustedKeys: keys, Workers: 2}
}

// An attacker makes a whole bundle of invented entries, self-consistent
// and signed with their own key: refused unless its key is trusted, and
// the key it was checked against is always named.
func TestVerifyRefusesABundleSignedByAnotherKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	otherID := seal.KeyID(otherPub)
	for _, archive := range []bool{false, true} {
		forged := syntheticBundle(t, 10, otherKey, archive)

		_, err := bundle.VerifyBundle(ctx, forged, bundle.VerifyOptions{})
		require.ErrorIs(t, err, bundle.ErrNoTrustedKey)

		r, err := bundle.VerifyBundle(ctx, forged, trusting(testPub))
		require.NoError(t, err)
		require.Equal(t, []string{"checkpoint.json: checkpoint of tree size 10 is signed by key " + otherID + ", which is not a trusted key"}, r.Problems)
		require.Zero(t, r.Entries, "nothing is read past an untrusted checkpoint")
		require.Equal(t, otherID, r.Checkpoint.KeyID)

		// Trusting the bundle's own key, as asked: intact, signed by otherID.
		r, err = bundle.VerifyBundle(ctx, forged, bundle.VerifyOptions{TrustBundleKey: true})
		require.NoError(t, err)
		require.Empty(t, r.Problems)
		require.Equal(t, 10, r.Entries)
		require.Equal(t, otherID, r.Checkpoint.KeyID)
	}
}

// rewriteManifest applies edit to manifest.json, recomputing the size and
// hash of every file it lists, as an attacker without the key would.
func rewriteManifest(t *testing.T, dir string, edit func(m *bundle.Manifest)) {
	t.Helper()
	path := filepath.Join(dir, bundle.ManifestFile)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m bundle.Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	edit(&m)
	for name := range m.Files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		m.Files[name] = bundle.FileDigest{SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}
	}
	data, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// The last entries cut off, the manifest made to agree and its signature
// removed: refused by default. Only an explicitly allowed unsigned
// manifest lets it through, and then it says so.
func TestVerifyRefusesAnUnsignedBundleCutShort(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := syntheticBundle(t, 10, testKey, false)
	for _, name := range []string{bundle.EntriesFile, bundle.ProofsFile, bundle.EntriesCSVFile} {
		lines := readLines(t, filepath.Join(dir, name))
		keep := 7
		if name == bundle.EntriesCSVFile {
			keep++ // the header row
		}
		writeLines(t, filepath.Join(dir, name), lines[:keep])
	}
	rewriteManifest(t, dir, func(m *bundle.Manifest) {
		m.Entries = 7
		last := uint64(6)
		m.LastIndex = &last
	})

	// With the stale signature still there: it does not verify.
	r := verifyBundle(t, dir)
	require.Equal(t, []string{"manifest.sig: the signature does not verify over manifest.json with key " + seal.KeyID(testPub) + ": the manifest was changed after the export"}, r.Problems)
	require.Zero(t, r.Entries)

	require.NoError(t, os.Remove(filepath.Join(dir, bundle.ManifestSignatureFile)))
	r = verifyBundle(t, dir)
	require.Equal(t, []string{unsignedProblem}, r.Problems)
	require.Zero(t, r.Entries, "nothing is read past an unsigned manifest")
	require.ErrorIs(t, r.Err(), bundle.ErrVerification)

	opts := trusting(testPub)
	opts.AllowUnsignedManifest = true
	r, err := bundle.VerifyBundle(ctx, dir, opts)
	require.NoError(t, err)
	require.Empty(t, r.Problems)
	require.False(t, r.ManifestSigned)
	require.Equal(t, 7, r.Entries)
}

// Every file must have the size the manifest declares: a larger one is
// refused before it is read, a shorter one is reported.
func TestVerifyChecksFileSizesAgainstTheManifest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, file string
		change     func(data []byte) []byte
		want       []string
		entries    int
	}{
		{"entries.jsonl grown by a line", bundle.EntriesFile, func(d []byte) []byte { return append(d, d[:bytes.IndexByte(d, '\n')+1]...) },
			[]string{`^entries.jsonl has \d+ bytes, manifest.json says \d+: the file was changed after the export$`}, 0},
		{"checkpoint.json grown", bundle.CheckpointFile, func(d []byte) []byte { return append(d, ' ') },
			[]string{`^checkpoint.json has \d+ bytes, manifest.json says \d+: the file was changed after the export$`}, 0},
		{"entries.csv grown", bundle.EntriesCSVFile, func(d []byte) []byte { return append(d, "x\n"...) },
			[]string{`^entries.csv has \d+ bytes, manifest.json says \d+: the file was changed after the export$`}, 5},
		{"entries.csv cut short", bundle.EntriesCSVFile, func(d []byte) []byte { return d[:len(d)-10] },
			[]string{`^entries.csv has \d+ bytes, manifest.json says \d+: the file was changed after the export$`, `^entries.csv: SHA-256 [0-9a-f]{64} does not match the manifest's [0-9a-f]{64}$`}, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := syntheticBundle(t, 5, testKey, false)
			path := filepath.Join(dir, c.file)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, c.change(data), 0o644))
			r := verifyBundle(t, dir)
			require.Len(t, r.Problems, len(c.want), "%q", r.Problems)
			for i, re := range c.want {
				require.Regexp(t, re, r.Problems[i])
			}
			require.Equal(t, c.entries, r.Entries)
		})
	}
}

// A directory bundle whose files are links, pipes, devices or directories
// is refused at once, without reading them (a symlink to /dev/zero used to
// keep the verifier busy forever, a FIFO to block it).
func TestVerifyRefusesSpecialFilesInABundleDirectory(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, file string
		make       func(t *testing.T, path string)
		want       string
	}{
		{"symlink to /dev/zero", bundle.EntriesCSVFile, func(t *testing.T, p string) { require.NoError(t, os.Symlink("/dev/zero", p)) }, "entries.csv is a symbolic link, not a regular file"},
		{"symlink to a regular file", bundle.ProofsFile, func(t *testing.T, p string) {
			require.NoError(t, os.WriteFile(p+".real", nil, 0o644))
			require.NoError(t, os.Symlink(filepath.Base(p)+".real", p))
		}, "proofs.jsonl is a symbolic link, not a regular file"},
		{"manifest as a symlink", bundle.ManifestFile, func(t *testing.T, p string) { require.NoError(t, os.Symlink("/dev/zero", p)) }, "manifest.json is a symbolic link, not a regular file"},
		{"fifo", bundle.EntriesFile, func(t *testing.T, p string) { require.NoError(t, syscall.Mkfifo(p, 0o644)) }, "entries.jsonl is a named pipe (FIFO), not a regular file"},
		{"directory", bundle.EntriesCSVFile, func(t *testing.T, p string) { require.NoError(t, os.Mkdir(p, 0o755)) }, "entries.csv is a directory, not a regular file"},
		{"character device", bundle.EntriesCSVFile, func(t *testing.T, p string) {
			if os.Geteuid() != 0 {
				t.Skip("making a device node needs root")
			}
			require.NoError(t, syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5)) // /dev/zero's numbers
		}, "entries.csv is a device, not a regular file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := syntheticBundle(t, 5, testKey, false)
			path := filepath.Join(dir, c.file)
			require.NoError(t, os.Remove(path))
			c.make(t, path)
			_, err := bundle.VerifyBundle(context.Background(), dir, trusting(testPub))
			require.ErrorIs(t, err, bundle.ErrBadBundle)
			require.EqualError(t, err, dir+": not a valid bundle: "+c.want)
		})
	}

	// The bundle path itself must be a directory or a regular file.
	fifo := filepath.Join(t.TempDir(), "bundle.tgz")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	_, err := bundle.VerifyBundle(context.Background(), fifo, trusting(testPub))
	require.EqualError(t, err, fifo+" is neither a bundle directory nor a bundle archive (.tar.gz): it is a named pipe (FIFO)")
}

// writeBomb writes files as an archive in which the member named bomb
// holds size zero bytes (and nothing follows it), written as gzip members
// of 1 MiB of zeros each (a gzip stream may hold several members, read as
// one), so a 1 GiB member costs about 1 MB of archive and no time to make.
func writeBomb(t *testing.T, path string, files []archiveFile, bomb string, size int64) {
	t.Helper()
	var out bytes.Buffer
	zeroMember := func() []byte {
		var b bytes.Buffer
		gz, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = gz.Write(make([]byte, 1<<20))
		require.NoError(t, gz.Close())
		return b.Bytes()
	}()
	gz := gzip.NewWriter(&out)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := f.hdr
		hdr.Size = int64(len(f.data))
		if f.hdr.Name != bomb {
			require.NoError(t, tw.WriteHeader(&hdr))
			_, err := tw.Write(f.data)
			require.NoError(t, err)
			continue
		}
		hdr.Size = size
		require.NoError(t, tw.WriteHeader(&hdr)) // written at once; the data follows
		require.NoError(t, gz.Close())
		for range size >> 20 {
			out.Write(zeroMember)
		}
		break // nothing after the bomb
	}
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
}

// Gzip bombs: members far larger once decompressed than the manifest says
// are refused from their header, and nothing is ever written to disk (the
// old verifier extracted archives into TMPDIR; here TMPDIR is not even a
// directory).
func TestVerifyRefusesGzipBombsWithoutWritingAnything(t *testing.T) {
	ctx := context.Background()
	good := readArchive(t, syntheticArchive(t, 5, true))
	unsigned := readArchive(t, syntheticArchive(t, 5, false))
	scratch := t.TempDir()
	tmp := filepath.Join(t.TempDir(), "not-a-directory")
	require.NoError(t, os.WriteFile(tmp, nil, 0o644))
	t.Setenv("TMPDIR", tmp)
	const gib = 1 << 30

	for _, c := range []struct {
		name  string
		files []archiveFile
		bomb  string
		opts  bundle.VerifyOptions
		err   string // or
		probs []string
	}{
		{name: "entries.jsonl", files: good, bomb: bundle.EntriesFile, opts: trusting(testPub),
			probs: []string{`^entries.jsonl has 1073741824 bytes, manifest.json says \d+: the file was changed after the export$`}},
		{name: "entries.csv, after entries and proofs", files: good, bomb: bundle.EntriesCSVFile, opts: trusting(testPub),
			probs: []string{`^entries.csv has 1073741824 bytes, manifest.json says \d+: the file was changed after the export$`}},
		{name: "manifest.json", files: good, bomb: bundle.ManifestFile, opts: trusting(testPub),
			err: `: not a valid bundle archive: manifest.json has 1073741824 bytes, more than a manifest.json can (1048576)`},
		{name: "manifest.sig", files: good, bomb: bundle.ManifestSignatureFile, opts: trusting(testPub),
			err: `: not a valid bundle archive: manifest.sig has 1073741824 bytes, more than a manifest.sig can (65536)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(scratch, strings.ReplaceAll(c.name, " ", "_")+".tar.gz")
			writeBomb(t, path, c.files, c.bomb, gib)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Less(t, fi.Size(), int64(8<<20), "a bomb is small")
			r, err := bundle.VerifyBundle(ctx, path, c.opts)
			if c.err != "" {
				require.ErrorIs(t, err, bundle.ErrBadArchive)
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, r.Problems, len(c.probs), "%q", r.Problems)
			for i, re := range c.probs {
				require.Regexp(t, re, r.Problems[i])
			}
		})
	}

	// An unsigned manifest (allowed) that declares the bomb's size: the
	// manifest cannot be trusted, but a line of zeros is still refused at
	// 16 MiB instead of being read whole.
	t.Run("declared by an unsigned manifest", func(t *testing.T) {
		files := append([]archiveFile(nil), unsigned...)
		var m bundle.Manifest
		require.Equal(t, bundle.ManifestFile, files[0].hdr.Name)
		require.NoError(t, json.Unmarshal(files[0].data, &m))
		m.Files[bundle.EntriesFile] = bundle.FileDigest{SHA256: m.Files[bundle.EntriesFile].SHA256, Bytes: gib}
		data, err := json.Marshal(m)
		require.NoError(t, err)
		files[0].data = data
		path := filepath.Join(scratch, "unsigned-bomb.tar.gz")
		writeBomb(t, path, files, bundle.EntriesFile, gib)
		opts := trusting(testPub)
		opts.AllowUnsignedManifest = true
		_, err = bundle.VerifyBundle(ctx, path, opts)
		require.ErrorIs(t, err, bundle.ErrBadBundle)
		require.EqualError(t, err, "not a valid bundle: line 1 of entries.jsonl is longer than 16 MiB, more than any entry")
	})

	// Too much declared in all.
	t.Run("manifest declaring more than a bundle may hold", func(t *testing.T) {
		files := append([]archiveFile(nil), unsigned...)
		var m bundle.Manifest
		require.NoError(t, json.Unmarshal(files[0].data, &m))
		m.Files[bundle.EntriesCSVFile] = bundle.FileDigest{Bytes: bundle.MaxArchiveBytes}
		data, err := json.Marshal(m)
		require.NoError(t, err)
		files[0].data = data
		files[0].hdr.Size = int64(len(data))
		path := filepath.Join(scratch, "big.tar.gz")
		writeArchive(t, path, files)
		opts := trusting(testPub)
		opts.AllowUnsignedManifest = true
		r, err := bundle.VerifyBundle(ctx, path, opts)
		require.NoError(t, err)
		require.Equal(t, []string{"manifest.json declares more than 68719476736 bytes (64 GiB) of files, the most a bundle may hold"}, r.Problems)
	})
}

// cancelling cancels a context at the first progress report.
type cancelling struct {
	cancel context.CancelFunc
	added  int
}

func (c *cancelling) Add(n int) {
	c.added += n
	c.cancel()
}

// A cancelled verification (SIGTERM) stops in its loops, verifies nothing
// and says so with ctx's error.
func TestVerifyStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	const n = 30_000
	for _, archive := range []bool{false, true} {
		path := syntheticBundle(t, n, testKey, archive)
		ctx, cancel := context.WithCancel(context.Background())
		p := &cancelling{cancel: cancel}
		opts := trusting(testPub)
		opts.Progress = p
		r, err := bundle.VerifyBundle(ctx, path, opts)
		require.ErrorIs(t, err, context.Canceled, "archive %v", archive)
		require.Less(t, r.Entries, n)
		require.Positive(t, p.added)
	}
}

func TestParseTrustFile(t *testing.T) {
	t.Parallel()
	b64 := func(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }
	text := "# webhookd production keys\n\n" + b64(testPub) + "   # sealing key 2026\n" + string(seal.EncodePublicKeyPEM(otherPub)) + "\n  # end\n"
	keys, err := seal.ParseTrustFile([]byte(text))
	require.NoError(t, err)
	require.Equal(t, []ed25519.PublicKey{testPub, otherPub}, keys)

	for _, c := range []struct{ text, want string }{
		{"", "holds no public key"},
		{"# only a comment\n\n", "holds no public key"},
		{b64(testPub) + "\nnot a key\n", "line 2: public key: want a PEM PUBLIC KEY block or the base64 of 32 bytes"},
		{"\n" + b64(testPub)[:20] + "\n", "line 2: public key: want a PEM PUBLIC KEY block or the base64 of 32 bytes"},
		{"-----BEGIN PUBLIC KEY-----\nAAAA\n", "line 1: public key: want a PEM PUBLIC KEY block or the base64 of 32 bytes"},
	} {
		_, err := seal.ParseTrustFile([]byte(c.text))
		require.EqualError(t, err, c.want, "%q", c.text)
	}
	require.True(t, strings.HasPrefix(string(seal.EncodePublicKeyPEM(testPub)), "-----BEGIN PUBLIC KEY-----"))
}
