package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// How the verifier reads a bundle it does not trust yet: every file is
// checked to be a regular file of the size the manifest declares before a
// byte of it is read, archives are streamed (nothing is unpacked to disk),
// and every read checks the context, so a hostile bundle can neither fill
// a disk nor keep the verifier busy past a SIGTERM.

// Limits on what is read before the manifest's sizes are known.
const (
	maxManifestBytes  = 1 << 20  // manifest.json
	maxSignatureBytes = 64 << 10 // manifest.sig
	maxSmallFileBytes = 64 << 10 // checkpoint.json, public_key.pem
	// maxLineBytes bounds one line of entries.jsonl or proofs.jsonl: an
	// entry holds a body of at most 1 MiB, base64-encoded.
	maxLineBytes = 16 << 20
)

// ErrBadBundle is matched by the error VerifyBundle returns for a bundle
// directory it refuses to read: a bundle file that is a symbolic link, a
// named pipe, a device or anything else but a regular file, a manifest too
// large to be one, a line longer than any entry.
var ErrBadBundle = errors.New("not a valid bundle")

// sizeMismatchError says a bundle file is larger than the manifest
// declares; the verifier reports it as a failed check and reads no further.
type sizeMismatchError struct {
	name      string
	got, want int64
}

func (e *sizeMismatchError) Error() string {
	return fmt.Sprintf("%s has %d bytes, %s says %d: the file was changed after the export", e.name, e.got, ManifestFile, e.want)
}

// bundleSource gives the verifier the files of a bundle.
type bundleSource interface {
	// open returns the content of bundle file name and its size. size >= 0
	// is the size the manifest declares, which the file must not exceed
	// (*sizeMismatchError otherwise; a shorter file is read, and the
	// verifier reports it); size < 0 means at most -size bytes. An optional
	// file may be absent (nil, 0, nil). Files are opened in archiveOrder,
	// each once.
	open(name string, size int64, optional bool) (io.Reader, int64, error)
	// finish checks that the bundle holds nothing more (archives).
	finish() error
	close()
}

// ctxReader fails every read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// exactReader reads exactly left bytes of r: no more, and an early end is
// io.ErrUnexpectedEOF.
type exactReader struct {
	name string
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("%s: %w: %d bytes short of its size", e.name, io.ErrUnexpectedEOF, e.left)
	}
	return n, err
}

// checkSize applies open's size rule to a file of got bytes.
func checkSize(name string, got, size int64) error {
	switch {
	case size >= 0 && got > size:
		return &sizeMismatchError{name: name, got: got, want: size}
	case size < 0 && got > -size:
		return fmt.Errorf("%s has %d bytes, more than a %s can (%d)", name, got, name, -size)
	}
	return nil
}

// fileKind names what a file that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// openRegular opens path for reading only if it is a regular file, without
// following a symbolic link and without blocking on a named pipe (see
// openFlags); the file is checked again once open, so a swap between the
// check and the open is caught.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is %s, not a regular file", filepath.Base(path), fileKind(before.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || !os.SameFile(before, fi)) {
		err = fmt.Errorf("%s was replaced while it was opened", filepath.Base(path))
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// dirSource reads a bundle directory.
type dirSource struct {
	ctx   context.Context
	dir   string
	files []*os.File
}

func (d *dirSource) open(name string, size int64, optional bool) (io.Reader, int64, error) {
	f, fi, err := openRegular(filepath.Join(d.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist) && optional:
		return nil, 0, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, err
	case err != nil:
		return nil, 0, fmt.Errorf("%s: %w: %v", d.dir, ErrBadBundle, err)
	}
	d.files = append(d.files, f)
	if err := checkSize(name, fi.Size(), size); err != nil {
		if _, mismatch := err.(*sizeMismatchError); mismatch {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%s: %w: %v", d.dir, ErrBadBundle, err)
	}
	return &exactReader{name: name, r: ctxReader{d.ctx, f}, left: fi.Size()}, fi.Size(), nil
}

func (d *dirSource) finish() error { return nil }

func (d *dirSource) close() {
	for _, f := range d.files {
		_ = f.Close()
	}
}

// archiveSource streams a bundle archive. Files up to entries.jsonl come
// from a first stream; proofs.jsonl, which is read line by line together
// with entries.jsonl, and what follows it from a second stream over the
// same open file, which skips (decompresses without keeping) what the
// first stream has read.
type archiveSource struct {
	ctx  context.Context
	path string
	f    *os.File
	size int64
	a, b *archiveStream
}

// archiveStream is one pass over the archive.
type archiveStream struct {
	tr      *tar.Reader
	closers []io.Closer
	seen    map[string]bool
	// pending is a member read ahead when an optional file was asked for
	// and was not there.
	pending *tar.Header
}

// openArchive opens the bundle archive at path, a regular file; ok is
// false (and the file closed) when it does not start with the gzip magic
// number.
func openArchive(ctx context.Context, path string) (*archiveSource, bool, error) {
	f, fi, err := openRegular(path)
	if err != nil {
		return nil, false, err
	}
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || magic != [2]byte{0x1f, 0x8b} {
		_ = f.Close()
		return nil, false, nil
	}
	s := &archiveSource{ctx: ctx, path: path, f: f, size: fi.Size()}
	if s.a, err = s.stream(); err != nil {
		s.close()
		return nil, false, err
	}
	return s, true, nil
}

func (s *archiveSource) bad(format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", s.path, ErrBadArchive, fmt.Sprintf(format, args...))
}

func (s *archiveSource) stream() (*archiveStream, error) {
	r := bufio.NewReaderSize(ctxReader{s.ctx, io.NewSectionReader(s.f, 0, s.size)}, 1<<20)
	gz, err := gzip.NewReader(r)
	if err != nil {
		if ctxErr := s.ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, s.bad("gzip: %v", err)
	}
	return &archiveStream{tr: tar.NewReader(gz), closers: []io.Closer{gz}, seen: map[string]bool{}}, nil
}

// next returns the next member's header, checked to be a bundle file (nil
// at the end of the archive).
func (s *archiveSource) next(st *archiveStream) (*tar.Header, error) {
	if h := st.pending; h != nil {
		st.pending = nil
		return h, nil
	}
	hdr, err := st.tr.Next()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		if ctxErr := s.ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, s.bad("%v", err)
	}
	if why := checkArchiveEntry(hdr, st.seen); why != "" {
		return nil, s.bad("entry %q %s", hdr.Name, why)
	}
	st.seen[hdr.Name] = true
	return hdr, nil
}

// member advances st to the member name (nil when optional and absent).
func (s *archiveSource) member(st *archiveStream, name string, optional bool) (*tar.Header, error) {
	hdr, err := s.next(st)
	if err != nil {
		return nil, err
	}
	if hdr == nil {
		if optional {
			return nil, nil
		}
		return nil, s.bad("it has no %s", name)
	}
	if hdr.Name != name {
		if optional && slices.Index(archiveOrder, hdr.Name) > slices.Index(archiveOrder, name) {
			st.pending = hdr
			return nil, nil
		}
		return nil, s.bad("entry %q is where %s should be: a bundle archive holds %s in this order (an archive whose manifest does not come first was written by an older webhookd: extract it with tar and verify the directory)",
			hdr.Name, name, strings.Join(archiveOrder, ", "))
	}
	return hdr, nil
}

func (s *archiveSource) open(name string, size int64, optional bool) (io.Reader, int64, error) {
	st := s.a
	if slices.Index(archiveOrder, name) >= slices.Index(archiveOrder, ProofsFile) {
		if s.b == nil {
			b, err := s.stream()
			if err != nil {
				return nil, 0, err
			}
			s.b = b
			for _, skip := range archiveOrder[:slices.Index(archiveOrder, ProofsFile)] {
				if _, err := s.member(b, skip, slices.Contains(optionalBundleFiles, skip)); err != nil {
					return nil, 0, err
				}
			}
		}
		st = s.b
	}
	hdr, err := s.member(st, name, optional)
	if err != nil || hdr == nil {
		return nil, 0, err
	}
	if err := checkSize(name, hdr.Size, size); err != nil {
		if _, mismatch := err.(*sizeMismatchError); mismatch {
			return nil, 0, err
		}
		return nil, 0, s.bad("%v", err)
	}
	return &exactReader{name: name, r: st.tr, left: hdr.Size}, hdr.Size, nil
}

func (s *archiveSource) finish() error {
	if s.b == nil {
		return nil
	}
	hdr, err := s.next(s.b)
	if err != nil {
		return err
	}
	if hdr != nil {
		return s.bad("entry %q comes after %s, the last bundle file", hdr.Name, archiveOrder[len(archiveOrder)-1])
	}
	return nil
}

func (s *archiveSource) close() {
	for _, st := range []*archiveStream{s.a, s.b} {
		if st != nil {
			for _, c := range st.closers {
				_ = c.Close()
			}
		}
	}
	_ = s.f.Close()
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
	case hdr.Size < 0:
		return "has a negative size"
	}
	return ""
}
