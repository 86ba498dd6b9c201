package bundle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/webhookd/webhookd/audit/seal"
	"golang.org/x/mod/sumdb/note"
)

// ErrVerification is matched by the error a verification returns when the
// bundle or ledger fails a check; its message is the first problem found.
var ErrVerification = errors.New("verification failed")

// Report is the outcome of a verification.
type Report struct {
	// Entries is the number of entries checked, Redacted how many of them
	// could only have their inclusion checked.
	Entries, Redacted int
	// Checkpoint is the checkpoint the entries were checked against (the
	// latest one for a ledger).
	Checkpoint seal.Checkpoint
	// Checkpoints is the number of checkpoints checked (ledger only).
	Checkpoints int
	// Unsealed counts ledger rows not sealed yet (ledger only).
	Unsealed int
	// ManifestSigned says the bundle's manifest.sig verified (bundle only).
	ManifestSigned bool
	// Witnessed says every required witness cosigned the checkpoint.
	Witnessed bool
	// Problems lists what failed, the first failing entry first; empty
	// when everything verified.
	Problems []string
}

// Err returns nil when there are no problems and otherwise an error
// matching ErrVerification whose message is the first problem.
func (r Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrVerification, r.Problems[0])
}

// ErrNoTrustedKey is returned by VerifyBundle and VerifyLedger when they
// are given no key to trust: a checkpoint that verifies with the key it
// carries proves only that whoever holds that key signed it, and anyone can
// make a key.
var ErrNoTrustedKey = errors.New("no trusted public key: give the key GET /ledger/checkpoint publishes (the one WEBHOOKD_SIGNING_KEY signs with), or trust the bundle's own key explicitly, which proves the bundle intact but not who made it")

// VerifyOptions configures a verification.
type VerifyOptions struct {
	// TrustedKeys are the public keys whose checkpoints are accepted: pin
	// the key published on GET /ledger/checkpoint. Required, unless
	// TrustBundleKey is set for a bundle.
	TrustedKeys []ed25519.PublicKey
	// TrustBundleKey, with no TrustedKeys, accepts the key a bundle
	// carries (public_key.pem): that proves the bundle intact, not who made
	// it. VerifyLedger ignores it.
	TrustBundleKey bool
	// AllowUnsignedManifest accepts a bundle without manifest.sig. By
	// default one fails: without the signature, what the manifest says
	// (actor, range, filters, completeness, counts) is not authenticated,
	// so a bundle cut short with an edited manifest would verify.
	AllowUnsignedManifest bool
	// Workers defaults to GOMAXPROCS.
	Workers int
	// Progress receives one Add per entry checked.
	Progress Progress
	// Witnesses must each have cosigned the checkpoint (a bundle's
	// checkpoint.note, the ledger's latest checkpoint).
	Witnesses []note.Verifier
	// Known are checkpoints remembered outside the database (a witness's
	// state file): the ledger must still give their roots (ledger only).
	Known []KnownCheckpoint
}

// chunkLines is how many line pairs one worker checks at a time.
const chunkLines = 2048

type chunk struct {
	seq     int
	first   int // entry number (1-based) of the chunk's first line
	entries [][]byte
	proofs  [][]byte
	buf     []byte // holds the lines, reused once the chunk is checked
}

// chunkBufBytes is the initial size of a chunk's line buffer: 2048 line
// pairs of a few kilobytes.
const chunkBufBytes = 8 << 20

// lineResult is a worker's verdict on one line pair.
type lineResult struct {
	index    uint64
	svixID   string
	redacted bool
	problem  string
}

type chunkResult struct {
	seq     int
	first   int
	results []lineResult
}

// VerifyBundle checks the bundle at path without any database: the
// checkpoint's signature by a trusted key, the manifest's signature (see
// VerifyOptions), each entry's leaf hash recomputed from its canonical
// encoding (a redacted entry must be marked so and only has its stated
// leaf hash checked), each entry's inclusion proof against the
// checkpoint, the order of ledger indexes and, for a complete bundle, that
// none is missing, the counts, and the size and SHA-256 of every file
// listed in the manifest. Entry checks run on opts.Workers goroutines.
//
// path is a bundle directory or a bundle archive (a regular file starting
// with the gzip magic number, see WriteArchive), which is read as a stream:
// nothing is written anywhere. A bundle is read defensively: the manifest
// first (at most 1 MiB), then each file only if it is a regular file (not
// a symbolic link, named pipe or device; archive members likewise) of the
// size the manifest declares, at most MaxArchiveBytes in all; and nothing
// past the checkpoint and manifest when either fails its signature check.
// Every read checks ctx.
//
// The error is ErrNoTrustedKey without a key to trust, matches
// ErrBadBundle or ErrBadArchive for a bundle that cannot be read safely,
// is ctx's error when ctx ends first, and is otherwise non-nil only when
// the bundle could not be read at all; failed checks are in
// Report.Problems (see Report.Err).
func VerifyBundle(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	if len(opts.TrustedKeys) == 0 && !opts.TrustBundleKey {
		return Report{}, ErrNoTrustedKey
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Report{}, err
	}
	var src bundleSource
	switch {
	case fi.IsDir():
		src = &dirSource{ctx: ctx, dir: path}
	case fi.Mode().IsRegular():
		a, ok, err := openArchive(ctx, path)
		if err != nil {
			return Report{}, err
		}
		if !ok {
			return Report{}, fmt.Errorf("%s is neither a bundle directory nor a bundle archive (.tar.gz)", path)
		}
		src = a
	default:
		return Report{}, fmt.Errorf("%s is neither a bundle directory nor a bundle archive (.tar.gz): it is %s", path, fileKind(fi.Mode()))
	}
	defer src.close()
	r, err := verifyBundle(ctx, src, opts)
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Whatever was found so far, an interrupted check verified nothing.
		return r, ctxErr
	}
	return r, err
}

// stopError carries a failed check after which the verifier reads no
// further.
type stopError struct{ problem string }

func (e stopError) Error() string { return e.problem }

// readSmall reads a small bundle file whole, recording its SHA-256 in
// digests (nil, nil when optional and absent).
func readSmall(src bundleSource, name string, size int64, optional bool, digests map[string]string, sizes map[string]int64) ([]byte, error) {
	rd, n, err := src.open(name, size, optional)
	if err != nil || rd == nil {
		return nil, asStop(err)
	}
	sizes[name] = n
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	digests[name] = hex.EncodeToString(sum[:])
	return data, nil
}

// lazyReader opens its reader at the first Read.
type lazyReader struct {
	open func() (io.Reader, error)
	r    io.Reader
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil {
		r, err := l.open()
		if err != nil {
			return 0, err
		}
		l.r = r
	}
	return l.r.Read(p)
}

// asStop turns a size mismatch into a stopError.
func asStop(err error) error {
	var mismatch *sizeMismatchError
	if errors.As(err, &mismatch) {
		return stopError{mismatch.Error()}
	}
	return err
}

// verifyBundle is VerifyBundle on an open bundle.
func verifyBundle(ctx context.Context, src bundleSource, opts VerifyOptions) (r Report, err error) {
	defer func() {
		var stop stopError
		if errors.As(err, &stop) {
			r.Problems = append(r.Problems, stop.problem)
			err = nil
		}
	}()
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	digests, sizes := map[string]string{}, map[string]int64{}

	mJSON, err := readSmall(src, ManifestFile, -maxManifestBytes, false, digests, sizes)
	if err != nil {
		return r, err
	}
	var m Manifest
	if err := json.Unmarshal(mJSON, &m); err != nil {
		return r, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Format != Format {
		problem("%s: format %q, this webhookd reads %q", ManifestFile, m.Format, Format)
		return r, nil
	}
	sigJSON, err := readSmall(src, ManifestSignatureFile, -maxSignatureBytes, true, digests, sizes)
	if err != nil {
		return r, err
	}

	// What the manifest lists, before anything it lists is read.
	listed := []string{CheckpointFile, PublicKeyFile, EntriesFile, ProofsFile, EntriesCSVFile}
	for _, want := range listed {
		if _, ok := m.Files[want]; !ok {
			problem("%s does not list %s", ManifestFile, want)
		}
	}
	names := slices.Sorted(maps.Keys(m.Files))
	var total int64
	for _, name := range names {
		if !slices.Contains(listed, name) && name != CheckpointNoteFile {
			problem("%s lists %s, which is not part of a bundle", ManifestFile, name)
		}
		if size := m.Files[name].Bytes; size < 0 || size > MaxArchiveBytes-total {
			problem("%s declares more than %d bytes (%d GiB) of files, the most a bundle may hold", ManifestFile, MaxArchiveBytes, MaxArchiveBytes>>30)
			break
		} else {
			total += size
		}
	}
	for _, name := range []string{CheckpointFile, PublicKeyFile, CheckpointNoteFile} {
		if m.Files[name].Bytes > maxSmallFileBytes {
			problem("%s says %s has %d bytes, more than a %s can (%d)", ManifestFile, name, m.Files[name].Bytes, name, maxSmallFileBytes)
		}
	}
	if len(r.Problems) > 0 {
		return r, nil
	}

	// The checkpoint, its key and the manifest's signature: nothing more is
	// read unless they verify.
	cpJSON, err := readSmall(src, CheckpointFile, m.Files[CheckpointFile].Bytes, false, digests, sizes)
	if err != nil {
		return r, err
	}
	var cp seal.Checkpoint
	if err := json.Unmarshal(cpJSON, &cp); err != nil {
		return r, fmt.Errorf("%s: %w", CheckpointFile, err)
	}
	r.Checkpoint = cp
	pemBytes, err := readSmall(src, PublicKeyFile, m.Files[PublicKeyFile].Bytes, false, digests, sizes)
	if err != nil {
		return r, err
	}
	var noteData []byte
	if _, ok := m.Files[CheckpointNoteFile]; ok {
		if noteData, err = readSmall(src, CheckpointNoteFile, m.Files[CheckpointNoteFile].Bytes, false, digests, sizes); err != nil {
			return r, err
		}
	}
	pub, err := seal.ParsePublicKey(pemBytes)
	switch {
	case err != nil:
		problem("%s: %v", PublicKeyFile, err)
	case !bytes.Equal(pub, cp.PublicKey):
		problem("%s holds key %s but %s is signed by key %s", PublicKeyFile, seal.KeyID(pub), CheckpointFile, seal.KeyID(cp.PublicKey))
	}
	if err := cp.VerifySignature(opts.TrustedKeys...); err != nil {
		problem("%s: %v", CheckpointFile, err)
	}
	if m.TreeSize != cp.TreeSize {
		problem("%s says tree size %d, %s %d", ManifestFile, m.TreeSize, CheckpointFile, cp.TreeSize)
	}
	if sigJSON == nil {
		if !opts.AllowUnsignedManifest {
			problem("the bundle has no %s: its manifest is not signed, so what it says of the export (range, completeness, counts, file hashes) is not authenticated and the bundle may have been cut short (--allow-unsigned-manifest accepts it)", ManifestSignatureFile)
		}
	} else {
		var sig ManifestSignature
		if err := json.Unmarshal(sigJSON, &sig); err != nil {
			problem("%s: %v", ManifestSignatureFile, err)
		} else if err := sig.Verify(cp.PublicKey, mJSON); err != nil {
			problem("%v", err)
		} else {
			r.ManifestSigned = true
		}
	}
	if len(r.Problems) > 0 {
		return r, nil
	}

	witnessProblems, err := checkBundleWitnesses(noteData, cp, opts)
	if err != nil {
		return r, err
	}
	r.Problems = append(r.Problems, witnessProblems...)
	r.Witnessed = len(opts.Witnesses) > 0 && len(witnessProblems) == 0

	entries, n, err := src.open(EntriesFile, m.Files[EntriesFile].Bytes, false)
	if err != nil {
		return r, asStop(err)
	}
	sizes[EntriesFile] = n
	// proofs.jsonl is opened at its first read: in an archive that starts
	// a second stream, which first skips entries.jsonl, so a bad first
	// line of entries.jsonl is found before that.
	proofs := &lazyReader{open: func() (io.Reader, error) {
		rd, n, err := src.open(ProofsFile, m.Files[ProofsFile].Bytes, false)
		sizes[ProofsFile] = n
		return rd, asStop(err)
	}}
	entryProblems, err := verifyEntries(ctx, entries, proofs, cp, m, opts, &r, digests)
	if err != nil {
		return r, err
	}
	r.Problems = append(r.Problems, entryProblems...)
	csvFile, n, err := src.open(EntriesCSVFile, m.Files[EntriesCSVFile].Bytes, false)
	if err != nil {
		return r, asStop(err)
	}
	sizes[EntriesCSVFile] = n
	d := sha256.New()
	if _, err := io.Copy(d, csvFile); err != nil {
		return r, err
	}
	digests[EntriesCSVFile] = hex.EncodeToString(d.Sum(nil))
	if err := src.finish(); err != nil {
		return r, err
	}

	if r.Entries != m.Entries {
		problem("%s has %d entries, %s says %d", EntriesFile, r.Entries, ManifestFile, m.Entries)
	}
	if r.Redacted != m.RedactedEntries {
		problem("%s has %d redacted entries, %s says %d", EntriesFile, r.Redacted, ManifestFile, m.RedactedEntries)
	}
	if r.Redacted > 0 && !m.Redacted {
		problem("%s holds redacted entries but %s says the export is not redacted", EntriesFile, ManifestFile)
	}
	for _, name := range names {
		if got, want := sizes[name], m.Files[name].Bytes; got != want {
			problem("%s", (&sizeMismatchError{name: name, got: got, want: want}).Error())
		}
		if got := digests[name]; got != m.Files[name].SHA256 {
			problem("%s: SHA-256 %s does not match the manifest's %s", name, got, m.Files[name].SHA256)
		}
	}
	return r, nil
}

// hashingReader reads lines while hashing everything read.
type hashingReader struct {
	name  string
	r     *bufio.Reader
	d     hash.Hash
	lines int
}

func newHashing(name string, r io.Reader) *hashingReader {
	d := sha256.New()
	return &hashingReader{name: name, r: bufio.NewReaderSize(io.TeeReader(r, d), 1<<20), d: d}
}

// line appends the next line to buf and returns buf and the line, without
// its newline (nil at the end). A line longer than maxLineBytes is an error
// matching ErrBadBundle.
func (h *hashingReader) line(buf []byte) ([]byte, []byte, error) {
	start := len(buf)
	frag, err := h.r.ReadSlice('\n')
	buf = append(buf, frag...)
	for err == bufio.ErrBufferFull {
		if len(buf)-start > maxLineBytes {
			return buf, nil, fmt.Errorf("%w: line %d of %s is longer than %d MiB, more than any entry", ErrBadBundle, h.lines+1, h.name, maxLineBytes>>20)
		}
		frag, err = h.r.ReadSlice('\n')
		buf = append(buf, frag...)
	}
	if err == io.EOF && len(buf) == start {
		return buf, nil, nil
	}
	if err != nil && err != io.EOF {
		return buf, nil, err
	}
	h.lines++
	l := buf[start:len(buf):len(buf)]
	return buf, bytes.TrimSuffix(l, []byte("\n")), nil
}

// verifyEntries checks entries.jsonl and proofs.jsonl line by line and
// records both files' SHA-256 in digests.
func verifyEntries(ctx context.Context, entriesFile, proofsFile io.Reader, cp seal.Checkpoint, m Manifest, opts VerifyOptions, r *Report, digests map[string]string) ([]string, error) {
	entries := newHashing(EntriesFile, entriesFile)
	proofs := newHashing(ProofsFile, proofsFile)

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan chunk, workers)
	done := make(chan chunkResult, workers)
	readErr := make(chan error, 1)
	// Line buffers of checked chunks go back to the reader.
	free := make(chan chunk, 2*workers+2)
	var lineCountMismatch string
	go func() {
		defer close(work)
		seq, n := 0, 0
		for {
			var c chunk
			select {
			case c = <-free:
			default:
				c = chunk{entries: make([][]byte, 0, chunkLines), proofs: make([][]byte, 0, chunkLines), buf: make([]byte, 0, chunkBufBytes)}
			}
			c.seq, c.first = seq, n+1
			for len(c.entries) < chunkLines {
				var e, p []byte
				var err error
				c.buf, e, err = entries.line(c.buf)
				if err != nil {
					readErr <- err
					return
				}
				c.buf, p, err = proofs.line(c.buf)
				if err != nil {
					readErr <- err
					return
				}
				if e == nil || p == nil {
					if e != nil || p != nil {
						lineCountMismatch = fmt.Sprintf("%s and %s have different numbers of lines (they differ from line %d)", EntriesFile, ProofsFile, n+1)
						// Drain the longer file so its digest is complete.
						for _, h := range []*hashingReader{entries, proofs} {
							if _, err := io.Copy(io.Discard, h.r); err != nil {
								readErr <- err
								return
							}
						}
					}
					if len(c.entries) > 0 {
						select {
						case work <- c:
						case <-ctx.Done():
							readErr <- ctx.Err()
							return
						}
					}
					readErr <- nil
					return
				}
				c.entries = append(c.entries, e)
				c.proofs = append(c.proofs, p)
				n++
			}
			select {
			case work <- c:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			seq++
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			v := lineVerifier{cp: cp, cache: newPathCache(cp.TreeSize, cp.RootHash)}
			for c := range work {
				res := chunkResult{seq: c.seq, first: c.first, results: make([]lineResult, len(c.entries))}
				for i := range c.entries {
					res.results[i] = v.check(c.entries[i], c.proofs[i])
				}
				select {
				case free <- chunk{entries: c.entries[:0], proofs: c.proofs[:0], buf: c.buf[:0]}:
				default:
				}
				select {
				case done <- res:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	// In order: the first problem by line, index order and gaps.
	var (
		problems   []string
		firstHard  string
		gap        string
		outOfOrder bool
		prev       uint64
		havePrev   bool
		pending    = map[int]chunkResult{}
		nextSeq    = 0
	)
	for res := range done {
		pending[res.seq] = res
		for {
			c, ok := pending[nextSeq]
			if !ok {
				break
			}
			delete(pending, nextSeq)
			nextSeq++
			for i, lr := range c.results {
				n := c.first + i
				r.Entries++
				if lr.redacted {
					r.Redacted++
				}
				if firstHard != "" {
					continue
				}
				name := func() string { return fmt.Sprintf("entry %d (ledger index %d, svix_id %s)", n, lr.index, lr.svixID) }
				if lr.problem != "" {
					firstHard = fmt.Sprintf("entry %d: %s", n, lr.problem)
					if lr.svixID != "" {
						firstHard = name() + ": " + lr.problem
					}
					continue
				}
				switch {
				case havePrev && lr.index == prev:
					firstHard = fmt.Sprintf("%s: ledger index %d appears twice", name(), lr.index)
				case havePrev && lr.index < prev:
					firstHard = fmt.Sprintf("%s is out of order: it comes after ledger index %d", name(), prev)
					outOfOrder = true
				case m.Complete && gap == "":
					want := uint64(0)
					if havePrev {
						want = prev + 1
					} else if m.FirstIndex != nil {
						want = *m.FirstIndex
					}
					if lr.index != want {
						gap = fmt.Sprintf("ledger index %d is missing: %s follows it", want, name())
						if want > lr.index {
							gap = fmt.Sprintf("%s: the export should start at ledger index %d", name(), want)
						}
					}
				}
				prev, havePrev = lr.index, true
			}
			if opts.Progress != nil {
				opts.Progress.Add(len(c.results))
			}
		}
	}
	if err := <-readErr; err != nil {
		return nil, err
	}
	if firstHard != "" {
		problems = append(problems, firstHard)
	}
	if gap != "" && !outOfOrder {
		problems = append(problems, gap)
	}
	if m.Complete && firstHard == "" && gap == "" && m.LastIndex != nil && (!havePrev || prev != *m.LastIndex) {
		problems = append(problems, fmt.Sprintf("the export ends before ledger index %d, the last one %s names", *m.LastIndex, ManifestFile))
	}
	if lineCountMismatch != "" {
		problems = append(problems, lineCountMismatch)
	}
	digests[EntriesFile] = hex.EncodeToString(entries.d.Sum(nil))
	digests[ProofsFile] = hex.EncodeToString(proofs.d.Sum(nil))
	return problems, nil
}

// lineVerifier checks line pairs on one worker, reusing its buffers.
type lineVerifier struct {
	cp    seal.Checkpoint
	cache *pathCache
	dec   lineDecoder
	leaf  seal.LeafHasher
	entry seal.Entry // the line being checked, kept here to spare an allocation each
	proof seal.Proof
}

// check verifies one entry and its proof.
func (v *lineVerifier) check(entryLine, proofLine []byte) lineResult {
	cp := v.cp
	e, p := &v.entry, &v.proof
	*e, *p = seal.Entry{}, seal.Proof{}
	if err := v.dec.entry(entryLine, e); err != nil {
		return lineResult{problem: fmt.Sprintf("%s line is not a valid entry: %v", EntriesFile, err)}
	}
	res := lineResult{index: e.LedgerIndex, svixID: e.SvixID, redacted: e.Redacted}
	if err := v.dec.proof(proofLine, p); err != nil {
		res.problem = fmt.Sprintf("%s line is not a valid proof: %v", ProofsFile, err)
		return res
	}
	switch {
	case p.LedgerIndex != e.LedgerIndex:
		res.problem = fmt.Sprintf("its proof in %s is for ledger index %d", ProofsFile, p.LedgerIndex)
		return res
	case p.LeafHash != e.LeafHash:
		res.problem = fmt.Sprintf("its proof in %s is for leaf hash %s, the entry states %s", ProofsFile, p.LeafHash, e.LeafHash)
		return res
	case p.TreeSize != cp.TreeSize:
		res.problem = fmt.Sprintf("its proof is against tree size %d, the checkpoint's is %d", p.TreeSize, cp.TreeSize)
		return res
	}
	if e.Redacted {
		if e.Payload != nil || len(e.RedactedPayload) == 0 {
			res.problem = "marked redacted but carries a raw payload or no redacted payload"
			return res
		}
	} else {
		if e.RedactedPayload != nil {
			res.problem = "carries a redacted payload but is not marked redacted"
			return res
		}
		if got := v.leaf.Sum(e); got != e.LeafHash {
			res.problem = fmt.Sprintf("leaf hash does not match the entry's canonical encoding (computed %s, stated %s): the entry was altered", got, e.LeafHash)
			return res
		}
	}
	if err := v.cache.verify(e.LeafHash, e.LedgerIndex, p.Path); err != nil {
		res.problem = strings.TrimPrefix(err.Error(), "merkle: ")
	}
	return res
}
