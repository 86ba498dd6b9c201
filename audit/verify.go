package audit

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
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

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
	Checkpoint Checkpoint
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

// VerifyOptions configures a verification.
type VerifyOptions struct {
	// TrustedKeys, when not empty, are the only public keys whose
	// checkpoints are accepted. Without them a bundle is checked against
	// the key it carries, which proves integrity but not origin: pin the
	// key published on GET /ledger/checkpoint.
	TrustedKeys []ed25519.PublicKey
	// Workers defaults to GOMAXPROCS.
	Workers int
	// Progress receives one Add per entry checked.
	Progress Progress
	// RequireSignedManifest makes a bundle without manifest.sig fail.
	RequireSignedManifest bool
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
}

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
// checkpoint's signature, the public key, each entry's leaf hash
// recomputed from its canonical encoding (a redacted entry must be marked
// so and only has its stated leaf hash checked), each entry's inclusion
// proof against the checkpoint, the order of ledger indexes and, for a
// complete bundle, that none is missing, the counts, and the SHA-256 of
// every file listed in the manifest. Entry checks run on opts.Workers
// goroutines. The error is non-nil only when the bundle could not be read
// at all; failed checks are in Report.Problems (see Report.Err).
//
// path is a bundle directory or a bundle archive (a regular file starting
// with the gzip magic number, see WriteArchive): an archive is extracted
// with ExtractArchive into a temporary directory (os.TempDir, so TMPDIR),
// removed afterwards, and checked exactly as a directory.
func VerifyBundle(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Report{}, err
	}
	if fi.IsDir() {
		return verifyBundleDir(ctx, path, opts)
	}
	isGzip, err := isGzipFile(path)
	if err != nil {
		return Report{}, err
	}
	if !isGzip {
		return Report{}, fmt.Errorf("%s is neither a bundle directory nor a bundle archive (.tar.gz)", path)
	}
	dir, err := os.MkdirTemp("", "webhookd-verify-*")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)
	if err := ExtractArchive(path, dir); err != nil {
		return Report{}, err
	}
	return verifyBundleDir(ctx, dir, opts)
}

// verifyBundleDir is VerifyBundle for a bundle directory.
func verifyBundleDir(ctx context.Context, dir string, opts VerifyOptions) (Report, error) {
	var r Report
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	var m Manifest
	mJSON, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(mJSON, &m); err != nil {
		return r, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.Format != BundleFormat {
		problem("%s: format %q, this webhookd reads %q", ManifestFile, m.Format, BundleFormat)
		return r, nil
	}
	var cp Checkpoint
	if err := readJSON(filepath.Join(dir, CheckpointFile), &cp); err != nil {
		return r, err
	}
	r.Checkpoint = cp
	pemBytes, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return r, err
	}
	pub, err := ParsePublicKey(pemBytes)
	switch {
	case err != nil:
		problem("%s: %v", PublicKeyFile, err)
	case !bytes.Equal(pub, cp.PublicKey):
		problem("%s holds key %s but %s is signed by key %s", PublicKeyFile, KeyID(pub), CheckpointFile, KeyID(cp.PublicKey))
	}
	if err := cp.VerifySignature(opts.TrustedKeys...); err != nil {
		problem("%s: %v", CheckpointFile, err)
	}
	if m.TreeSize != cp.TreeSize {
		problem("%s says tree size %d, %s %d", ManifestFile, m.TreeSize, CheckpointFile, cp.TreeSize)
	}
	switch sigJSON, err := os.ReadFile(filepath.Join(dir, ManifestSignatureFile)); {
	case errors.Is(err, fs.ErrNotExist):
		if opts.RequireSignedManifest {
			problem("the bundle has no %s: its manifest is not signed", ManifestSignatureFile)
		}
	case err != nil:
		return r, err
	default:
		var sig ManifestSignature
		if err := json.Unmarshal(sigJSON, &sig); err != nil {
			problem("%s: %v", ManifestSignatureFile, err)
		} else if err := sig.Verify(cp.PublicKey, mJSON); err != nil {
			problem("%v", err)
		} else {
			r.ManifestSigned = true
		}
	}

	witnessProblems, hasNote, err := checkBundleWitnesses(dir, cp, opts)
	if err != nil {
		return r, err
	}
	r.Problems = append(r.Problems, witnessProblems...)
	r.Witnessed = len(opts.Witnesses) > 0 && len(witnessProblems) == 0

	digests := map[string]string{}
	entryProblems, err := verifyEntries(ctx, dir, cp, m, opts, &r, digests)
	if err != nil {
		return r, err
	}
	r.Problems = append(r.Problems, entryProblems...)

	if r.Entries != m.Entries {
		problem("%s has %d entries, %s says %d", EntriesFile, r.Entries, ManifestFile, m.Entries)
	}
	if r.Redacted != m.RedactedEntries {
		problem("%s has %d redacted entries, %s says %d", EntriesFile, r.Redacted, ManifestFile, m.RedactedEntries)
	}
	if r.Redacted > 0 && !m.Redacted {
		problem("%s holds redacted entries but %s says the export is not redacted", EntriesFile, ManifestFile)
	}
	hashed := []string{CheckpointFile, PublicKeyFile, EntriesCSVFile}
	if hasNote {
		hashed = append(hashed, CheckpointNoteFile)
	}
	for _, name := range hashed {
		d, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return r, err
		}
		digests[name] = d
	}
	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, want := range []string{EntriesFile, ProofsFile, EntriesCSVFile, CheckpointFile, PublicKeyFile} {
		if _, ok := m.Files[want]; !ok {
			problem("%s does not list %s", ManifestFile, want)
		}
	}
	for _, name := range names {
		got, ok := digests[name]
		if !ok {
			problem("%s lists %s, which is not part of a bundle", ManifestFile, name)
			continue
		}
		if got != m.Files[name].SHA256 {
			problem("%s: SHA-256 %s does not match the manifest's %s", name, got, m.Files[name].SHA256)
		}
	}
	return r, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.Copy(d, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(d.Sum(nil)), nil
}

// hashingReader reads lines while hashing everything read.
type hashingReader struct {
	r *bufio.Reader
	d hash.Hash
}

func openHashing(path string) (*hashingReader, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	d := sha256.New()
	return &hashingReader{r: bufio.NewReaderSize(io.TeeReader(f, d), 1<<20), d: d}, f, nil
}

// line returns the next line without its newline (nil at the end).
func (h *hashingReader) line() ([]byte, error) {
	l, err := h.r.ReadBytes('\n')
	if err == io.EOF && len(l) == 0 {
		return nil, nil
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.TrimSuffix(l, []byte("\n")), nil
}

// verifyEntries checks entries.jsonl and proofs.jsonl line by line and
// records both files' SHA-256 in digests.
func verifyEntries(ctx context.Context, dir string, cp Checkpoint, m Manifest, opts VerifyOptions, r *Report, digests map[string]string) ([]string, error) {
	entries, ef, err := openHashing(filepath.Join(dir, EntriesFile))
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	proofs, pf, err := openHashing(filepath.Join(dir, ProofsFile))
	if err != nil {
		return nil, err
	}
	defer pf.Close()

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan chunk, workers)
	done := make(chan chunkResult, workers)
	readErr := make(chan error, 1)
	var lineCountMismatch string
	go func() {
		defer close(work)
		seq, n := 0, 0
		for {
			c := chunk{seq: seq, first: n + 1}
			for len(c.entries) < chunkLines {
				e, err := entries.line()
				if err != nil {
					readErr <- err
					return
				}
				p, err := proofs.line()
				if err != nil {
					readErr <- err
					return
				}
				if e == nil || p == nil {
					if e != nil || p != nil {
						lineCountMismatch = fmt.Sprintf("%s and %s have different numbers of lines (they differ from line %d)", EntriesFile, ProofsFile, n+1)
						// Drain the longer file so its digest is complete.
						for l, _ := entries.line(); l != nil; l, _ = entries.line() {
						}
						for l, _ := proofs.line(); l != nil; l, _ = proofs.line() {
						}
					}
					if len(c.entries) > 0 {
						work <- c
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
			cache := newPathCache(cp.TreeSize, cp.RootHash)
			for c := range work {
				res := chunkResult{seq: c.seq, first: c.first, results: make([]lineResult, len(c.entries))}
				for i := range c.entries {
					res.results[i] = checkLine(c.entries[i], c.proofs[i], cp, cache)
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
				name := fmt.Sprintf("entry %d (ledger index %d, svix_id %s)", n, lr.index, lr.svixID)
				if lr.problem != "" {
					firstHard = fmt.Sprintf("entry %d: %s", n, lr.problem)
					if lr.svixID != "" {
						firstHard = name + ": " + lr.problem
					}
					continue
				}
				switch {
				case havePrev && lr.index == prev:
					firstHard = fmt.Sprintf("%s: ledger index %d appears twice", name, lr.index)
				case havePrev && lr.index < prev:
					firstHard = fmt.Sprintf("%s is out of order: it comes after ledger index %d", name, prev)
					outOfOrder = true
				case m.Complete && gap == "":
					want := uint64(0)
					if havePrev {
						want = prev + 1
					} else if m.FirstIndex != nil {
						want = *m.FirstIndex
					}
					if lr.index != want {
						gap = fmt.Sprintf("ledger index %d is missing: %s follows it", want, name)
						if want > lr.index {
							gap = fmt.Sprintf("%s: the export should start at ledger index %d", name, want)
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

// checkLine verifies one entry and its proof.
func checkLine(entryLine, proofLine []byte, cp Checkpoint, cache *pathCache) lineResult {
	var e Entry
	if err := decodeEntry(entryLine, &e); err != nil {
		return lineResult{problem: fmt.Sprintf("%s line is not a valid entry: %v", EntriesFile, err)}
	}
	res := lineResult{index: e.LedgerIndex, svixID: e.SvixID, redacted: e.Redacted}
	var p Proof
	if err := decodeProof(proofLine, &p); err != nil {
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
		if got := ComputeLeafHash(&e); got != e.LeafHash {
			res.problem = fmt.Sprintf("leaf hash does not match the entry's canonical encoding (computed %s, stated %s): the entry was altered", got, e.LeafHash)
			return res
		}
	}
	if err := cache.verify(e.LeafHash, e.LedgerIndex, p.Path); err != nil {
		res.problem = strings.TrimPrefix(err.Error(), "merkle: ")
	}
	return res
}
