package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/audit/seal"
)

// archiveFile is one entry of a test archive.
type archiveFile struct {
	hdr  tar.Header
	data []byte
}

// readArchive returns the entries of the gzip'd tar archive at path.
func readArchive(t *testing.T, path string) []archiveFile {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var out []archiveFile
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, archiveFile{hdr: *hdr, data: data})
	}
}

// writeArchive writes files as a gzip'd tar archive at path, each header
// as given (Size defaults to the data's length).
func writeArchive(t *testing.T, path string, files []archiveFile) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		hdr := f.hdr
		if hdr.Size == 0 {
			hdr.Size = int64(len(f.data))
		}
		require.NoError(t, tw.WriteHeader(&hdr))
		_, err := tw.Write(f.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func TestExportToArchiveVerifiesLikeADirectory(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(10, "")
	l.Seal()
	dir, _ := l.export(bundle.ExportOptions{Key: testKey})
	out := filepath.Join(t.TempDir(), "out")
	archive, m := l.export(bundle.ExportOptions{Archive: filepath.Join(out, "bundle.tar.gz"), Key: testKey})
	require.Equal(t, 10, m.Entries)

	// Only the archive is left beside it: the scratch directory is gone.
	left, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, left, 1)

	files := readArchive(t, archive)
	var names []string
	for _, f := range files {
		names = append(names, f.hdr.Name)
		require.Equal(t, byte(tar.TypeReg), f.hdr.Typeflag)
		require.EqualValues(t, 0o644, f.hdr.Mode)
		require.Equal(t, m.CreatedAt.Truncate(time.Second), f.hdr.ModTime.UTC())
		if f.hdr.Name != bundle.ManifestFile && f.hdr.Name != bundle.ManifestSignatureFile {
			require.EqualValues(t, m.Files[f.hdr.Name].Bytes, len(f.data), f.hdr.Name)
		}
	}
	require.Equal(t, []string{"manifest.json", "manifest.sig", "checkpoint.json", "public_key.pem", "checkpoint.note", "entries.jsonl", "proofs.jsonl", "entries.csv"}, names)

	fromDir := verifyBundle(t, dir, testKey.Public().(ed25519.PublicKey))
	fromArchive := verifyBundle(t, archive, testKey.Public().(ed25519.PublicKey))
	require.Empty(t, fromArchive.Problems)
	require.True(t, fromArchive.ManifestSigned)
	require.Equal(t, fromDir, fromArchive)

	// Unsigned, the archive has no manifest.sig: refused unless allowed.
	unsigned, _ := l.exportUnsigned(bundle.ExportOptions{Archive: filepath.Join(out, "unsigned.tgz")})
	require.Len(t, readArchive(t, unsigned), 7) // with checkpoint.note
	r := verifyBundle(t, unsigned)
	require.Equal(t, []string{unsignedProblem}, r.Problems)
	r, err = bundle.VerifyBundle(context.Background(), unsigned, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}, AllowUnsignedManifest: true})
	require.NoError(t, err)
	require.Empty(t, r.Problems)
	require.False(t, r.ManifestSigned)

	// An existing archive is never overwritten.
	_, err = bundle.Export(context.Background(), l.Store, bundle.ExportOptions{Archive: archive})
	require.ErrorContains(t, err, "already exists")
}

func TestWriteArchiveIsDeterministic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, name := range []string{bundle.ProofsFile, bundle.ManifestFile, bundle.EntriesFile, bundle.CheckpointFile, bundle.PublicKeyFile, bundle.EntriesCSVFile} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{byte('a' + i)}, 1000*i), 0o600))
	}
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	var archives [][]byte
	for _, name := range []string{"a.tgz", "b.tar.gz"} {
		path := filepath.Join(t.TempDir(), name)
		require.NoError(t, bundle.WriteArchive(dir, path, at))
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		archives = append(archives, data)
		require.Error(t, bundle.WriteArchive(dir, path, at), "overwrote %s", name)
	}
	require.Equal(t, archives[0], archives[1])
}

func TestIsArchivePath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{"b.tar.gz": true, "x/B.TGZ": true, "bundle": false, "b.gz": false, "b.tar": false, "b.tgz/": false} {
		require.Equal(t, want, bundle.IsArchivePath(path), path)
	}
}

func TestVerifyDetectsAnAlteredEntryInAnArchive(t *testing.T) {
	t.Parallel()
	l := setupLedger(t)
	l.Add(6, "")
	l.Seal()
	archive, _ := l.export(bundle.ExportOptions{Archive: filepath.Join(t.TempDir(), "bundle.tgz")})
	require.Empty(t, verifyBundle(t, archive).Problems)

	// The same change in the archive and in an extracted copy.
	files := readArchive(t, archive)
	dir := t.TempDir()
	for i, f := range files {
		if f.hdr.Name == bundle.EntriesFile {
			lines := strings.SplitAfter(string(f.data), "\n")
			var e seal.Entry
			require.NoError(t, json.Unmarshal([]byte(lines[3]), &e))
			e.Payload = bytes.Replace(e.Payload, []byte(`"object":"event"`), []byte(`"object":"evenT"`), 1)
			b, err := json.Marshal(e)
			require.NoError(t, err)
			lines[3] = string(b) + "\n"
			files[i].data = []byte(strings.Join(lines, ""))
			files[i].hdr.Size = int64(len(files[i].data))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f.hdr.Name), files[i].data, 0o644))
	}
	tampered := filepath.Join(t.TempDir(), "tampered.tar.gz")
	writeArchive(t, tampered, files)

	r := verifyBundle(t, tampered, testKey.Public().(ed25519.PublicKey))
	require.Len(t, r.Problems, 2)
	require.Regexp(t, `^entry 4 \(ledger index 3, svix_id msg_0004\): leaf hash does not match the entry's canonical encoding .*: the entry was altered$`, r.Problems[0])
	require.Equal(t, verifyBundle(t, dir, testKey.Public().(ed25519.PublicKey)), r)
}

func TestVerifyRejectsMaliciousArchives(t *testing.T) {
	t.Parallel()
	reg := func(name, data string) archiveFile {
		return archiveFile{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: []byte(data)}
	}
	good := readArchive(t, syntheticArchive(t, 10, true))
	names := func(files []archiveFile) (out []string) {
		for _, f := range files {
			out = append(out, f.hdr.Name)
		}
		return out
	}
	require.Equal(t, []string{"manifest.json", "manifest.sig", "checkpoint.json", "public_key.pem", "checkpoint.note", "entries.jsonl", "proofs.jsonl", "entries.csv"}, names(good))
	// with returns good with files[i] replaced by the given ones.
	with := func(i int, files ...archiveFile) []archiveFile {
		return slices.Concat(good[:i:i], files, good[i+1:])
	}
	sorted := slices.SortedFunc(slices.Values(good), func(a, b archiveFile) int { return strings.Compare(a.hdr.Name, b.hdr.Name) })
	for _, c := range []struct {
		name  string
		files []archiveFile
		want  string
	}{
		{"climbing", []archiveFile{reg("../x", "owned")}, `entry "../x" climbs out of the bundle (..)`},
		{"climbing deeper", []archiveFile{reg("a/../../x", "owned")}, `entry "a/../../x" climbs out of the bundle (..)`},
		{"absolute", []archiveFile{reg("/tmp/x", "owned")}, `entry "/tmp/x" is an absolute path`},
		{"symlink", []archiveFile{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: bundle.ManifestFile, Linkname: "/etc/passwd"}}}, `entry "manifest.json" is a link`},
		{"hard link", []archiveFile{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: bundle.ManifestFile, Linkname: "x"}}}, `entry "manifest.json" is a link`},
		{"directory", []archiveFile{{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "bundle/", Mode: 0o755}}}, `entry "bundle/" is not a regular file`},
		{"fifo", with(5, archiveFile{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: bundle.EntriesFile}}), `entry "entries.jsonl" is not a regular file`},
		{"symlink in place of entries.csv", with(7, archiveFile{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: bundle.EntriesCSVFile, Linkname: "/dev/zero"}}), `entry "entries.csv" is a link`},
		{"unknown file", with(3, good[3], reg("extra.txt", "x")), `entry "extra.txt" is not a bundle file`},
		{"subdirectory", with(0, reg("bundle/manifest.json", "{}")), `entry "bundle/manifest.json" is not a bundle file`},
		{"duplicate", with(2, good[2], good[2]), `entry "checkpoint.json" appears twice`},
		{"duplicate after the end", append(slices.Clone(good), good[6]), `entry "proofs.jsonl" appears twice`},
		{"missing file", with(3), `entry "checkpoint.note" is where public_key.pem should be`},
		{"missing last file", good[:7], `it has no entries.csv`},
		{"manifest not first (name order)", sorted, `entry "checkpoint.json" is where manifest.json should be: a bundle archive holds manifest.json, manifest.sig, checkpoint.json, public_key.pem, checkpoint.note, entries.jsonl, proofs.jsonl, entries.csv in this order`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bundle.tar.gz")
			writeArchive(t, path, c.files)
			_, err := bundle.VerifyBundle(context.Background(), path, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
			require.ErrorIs(t, err, bundle.ErrBadArchive)
			require.ErrorContains(t, err, c.want)
			require.True(t, strings.HasPrefix(err.Error(), path+": not a valid bundle archive: "), err.Error())
		})
	}
}

func TestVerifyRejectsAFileThatIsNotAnArchive(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	require.NoError(t, os.WriteFile(path, []byte("not gzip"), 0o644))
	_, err := bundle.VerifyBundle(context.Background(), path, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{testPub}})
	require.EqualError(t, err, path+" is neither a bundle directory nor a bundle archive (.tar.gz)")
}
