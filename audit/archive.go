package audit

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
// bundle files at its top level (no directory entry), in name order, each
// a regular file of mode 0644 whose modification time is the export's
// creation time, so that the same bundle always gives the same archive.
// Export writes one when ExportOptions.Archive is set; VerifyBundle reads
// one in place of a directory.

// MaxArchiveBytes caps the total size of the files extracted from a bundle
// archive (64 GiB): a bundle of several million entries stays well below,
// and an archive claiming more is refused before it fills a disk.
const MaxArchiveBytes int64 = 64 << 30

// ErrBadArchive is matched by the error ExtractArchive (and so VerifyBundle)
// returns for an archive that is not a well-formed bundle archive.
var ErrBadArchive = errors.New("not a valid bundle archive")

// bundleFiles lists the files every bundle has, optionalBundleFiles those
// it may have; archiveOrder all of them, in archive order.
var (
	bundleFiles         = []string{ManifestFile, CheckpointFile, PublicKeyFile, EntriesFile, EntriesCSVFile, ProofsFile}
	optionalBundleFiles = []string{ManifestSignatureFile, CheckpointNoteFile}
	archiveOrder        = slices.Sorted(slices.Values(slices.Concat(bundleFiles, optionalBundleFiles)))
)

// IsArchivePath reports whether path names a bundle archive rather than a
// bundle directory: whether it ends in .tar.gz or .tgz (any case).
func IsArchivePath(path string) bool {
	lower := strings.ToLower(path)
	return strings.HasSuffix(lower, ".tar.gz") || strings.HasSuffix(lower, ".tgz")
}

// WriteArchive writes the bundle files of dir into a new gzip'd tar
// archive at path, which must not exist: names sorted, mode 0644, owner 0,
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

// isGzipFile reports whether path is a regular file starting with the
// gzip magic number (1f 8b).
func isGzipFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false, err
	}
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false, nil
	}
	return magic == [2]byte{0x1f, 0x8b}, nil
}

// ExtractArchive extracts the bundle archive at path into dir, an existing
// empty directory. It accepts only what WriteArchive writes: regular files
// named like the bundle files, each once, every bundle file present (the
// manifest signature may be absent), at
// most MaxArchiveBytes in all. An absolute or climbing (..) name, a link,
// a directory or other special entry, an unknown or repeated name fail with
// an error matching ErrBadArchive that names the entry; nothing is written
// outside dir.
func ExtractArchive(path, dir string) error {
	return extractArchive(path, dir, MaxArchiveBytes)
}

func extractArchive(path, dir string, maxBytes int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrBadArchive, fmt.Sprintf(format, args...))
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		return bad("gzip: %v", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	seen := map[string]bool{}
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("%v", err)
		}
		if err := checkArchiveEntry(hdr, seen); err != "" {
			return bad("entry %q %s", hdr.Name, err)
		}
		seen[hdr.Name] = true
		if hdr.Size < 0 || hdr.Size > maxBytes-total {
			return bad("entry %q takes the archive over %d bytes (%d GiB), the most a bundle archive may hold", hdr.Name, maxBytes, maxBytes>>30)
		}
		total += hdr.Size
		if err := extractEntry(tr, filepath.Join(dir, hdr.Name), hdr.Size); err != nil {
			return bad("entry %q: %v", hdr.Name, err)
		}
	}
	for _, name := range bundleFiles {
		if !seen[name] {
			return bad("it has no %s", name)
		}
	}
	return nil
}

// checkArchiveEntry says why hdr cannot be a bundle file ("" when it can).
func checkArchiveEntry(hdr *tar.Header, seen map[string]bool) string {
	name := hdr.Name
	switch {
	case name == "":
		return "has no name"
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || filepath.IsAbs(name) || filepath.VolumeName(name) != "":
		return "is an absolute path"
	case slices.Contains(strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }), ".."):
		return "climbs out of the bundle (..)"
	case hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink:
		return "is a link"
	case hdr.Typeflag != tar.TypeReg:
		return fmt.Sprintf("is not a regular file (tar type %q)", hdr.Typeflag)
	case !slices.Contains(archiveOrder, name):
		return "is not a bundle file (" + strings.Join(archiveOrder, ", ") + ")"
	case seen[name]:
		return "appears twice"
	}
	return ""
}

// extractEntry copies the current entry of tr, size bytes, to a new file.
func extractEntry(tr *tar.Reader, dst string, size int64) (err error) {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.Copy(out, tr)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, its header says %d", n, size)
	}
	return err
}
