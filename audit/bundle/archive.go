package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A bundle can also travel as one file: a gzip'd tar archive holding the
// bundle files at its top level (no directory entry), in archiveOrder, each
// a regular file of mode 0644 whose modification time is the export's
// creation time, so that the same bundle always gives the same archive.
// Export writes one when ExportOptions.Archive is set; VerifyBundle reads
// one in place of a directory, as a stream: nothing is unpacked to disk.
//
// The manifest (and its signature) come first so that a verifier knows,
// and can authenticate, the size of every other member before it reads
// one; entries.jsonl and proofs.jsonl follow each other so that two
// streams over the archive give them line by line together.

// MaxArchiveBytes caps the total size of a bundle's files as its manifest
// declares them (64 GiB): a bundle of several million entries stays well
// below, and a manifest claiming more is refused before anything is read.
const MaxArchiveBytes int64 = 64 << 30

// ErrBadArchive is matched by the error VerifyBundle returns for an archive
// that is not a well-formed bundle archive.
var ErrBadArchive = errors.New("not a valid bundle archive")

// archiveOrder lists the bundle files in archive order; optionalBundleFiles
// those a bundle may lack.
var (
	archiveOrder        = []string{ManifestFile, ManifestSignatureFile, CheckpointFile, PublicKeyFile, CheckpointNoteFile, EntriesFile, ProofsFile, EntriesCSVFile}
	optionalBundleFiles = []string{ManifestSignatureFile, CheckpointNoteFile}
)

// IsArchivePath reports whether path names a bundle archive rather than a
// bundle directory: whether it ends in .tar.gz or .tgz (any case).
func IsArchivePath(path string) bool {
	lower := strings.ToLower(path)
	return strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz")
}

// WriteArchive writes the bundle files of dir into a new gzip'd tar
// archive at path, which must not exist: in archiveOrder, mode 0644, owner 0,
// modification time mtime (to the second). The archive is removed again if
// writing it fails.
func WriteArchive(dir, path string, mtime time.Time) (err error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, name := range archiveOrder {
		src := filepath.Join(dir, name)
		if slices.Contains(optionalBundleFiles, name) {
			if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		if err := addToArchive(tw, src, name, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return out.Sync()
}

// addToArchive appends the regular file at src to tw under name.
func addToArchive(tw *tar.Writer, src, name string, mtime time.Time) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(), Mode: 0o644, ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}
