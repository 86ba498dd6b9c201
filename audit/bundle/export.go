package bundle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/audit/seal"
	"github.com/webhookd/webhookd/domain"
)

// ExportLedger is what an export reads; *eventstore.Store is one.
type ExportLedger interface {
	LatestCheckpoint(ctx context.Context) (seal.Checkpoint, error)
	LeafHashes(ctx context.Context) ([]merkle.Hash, error)
	EachSealed(ctx context.Context, q Selection, fn func(SealedRow) error) error
	SealedIndexRange(ctx context.Context, q Selection) (first, last uint64, ok bool, err error)
	// Cosignatures returns the witnesses' cosignatures on the checkpoint
	// of tree size size.
	Cosignatures(ctx context.Context, size uint64) ([]seal.Cosignature, error)
}

// Appender appends to the ledger; *eventstore.Store is one.
type Appender interface {
	Append(ctx context.Context, e domain.LedgerEntry) (domain.AppendResult, error)
}

// Progress is told how many items were processed; nil is allowed
// wherever a Progress is taken.
type Progress interface {
	Add(n int)
}

// ExportOptions configures an export.
type ExportOptions struct {
	// From (inclusive) and To (exclusive) bound received_at; zero is open.
	From, To time.Time
	// User and Types filter entries (see Selection). With neither, the
	// export is complete: every ledger index between the first and the
	// last exported is in it.
	User  string
	Types []string
	// Redact replaces personal data in payloads (see ExportEntry).
	Redact bool
	// Dir is the bundle directory; created if missing, must be empty.
	Dir string
	// Archive, when set instead of Dir, is the bundle archive to create
	// (see WriteArchive; its parent is created if missing, it must not
	// exist): the bundle is written into a scratch directory beside it,
	// archived before the export is recorded, and the scratch directory
	// removed.
	Archive string
	// Actor is who asked for the export (recorded in the manifest and the
	// export's ledger event).
	Actor string
	// ID is the export id. Defaults to a new UUID.
	ID string
	// Now defaults to time.Now.
	Now func() time.Time
	// Progress receives one Add per exported entry.
	Progress Progress
	// Record, when set, appends the export's ledger event (ExportEvent),
	// signed with Key (seal.SignInternalEntry), once the bundle is written. It
	// requires Key: the sealer refuses an unsigned entry of webhookd's.
	Record Appender
	// Total, when set, is told the number of entries to come before the
	// first Add (-1 when unknown).
	Total func(n int64)
	// Key, when set, signs the manifest (manifest.sig). It must be the key
	// that signed the latest checkpoint, so that one public key vouches
	// for the whole bundle.
	Key ed25519.PrivateKey
}

// ErrNoSigningKeyToAppend is the text of the error of a command that would
// append an entry of webhookd's own to a sealed ledger without the key to
// sign it.
const ErrNoSigningKeyToAppend = "WEBHOOKD_SIGNING_KEY is not set: this command appends to the ledger, and on a sealed ledger webhookd signs every entry it appends with the key that seals it (the one webhookd serve has; the sealer refuses an unsigned one). Set WEBHOOKD_SIGNING_KEY or pass --signing-key"

// Export writes a bundle of the sealed entries opts selects, with their
// inclusion proofs against the latest checkpoint (entries indexed since are
// not included), and returns its manifest. The caller records the export
// in the ledger (ExportEvent).
func Export(ctx context.Context, ledger ExportLedger, opts ExportOptions) (Manifest, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ID == "" {
		opts.ID = NewUUID()
	}
	if opts.Record != nil && opts.Key == nil {
		return Manifest{}, errors.New(ErrNoSigningKeyToAppend)
	}
	cp, err := ledger.LatestCheckpoint(ctx)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		return Manifest{}, errors.New("the ledger has no signed checkpoint yet: run webhookd serve with WEBHOOKD_SIGNING_KEY set and wait one seal interval")
	}
	if err != nil {
		return Manifest{}, err
	}
	if err := cp.VerifySignature(); err != nil {
		return Manifest{}, fmt.Errorf("latest %w", err)
	}
	if opts.Key != nil {
		if pub := opts.Key.Public().(ed25519.PublicKey); !bytes.Equal(pub, cp.PublicKey) {
			return Manifest{}, fmt.Errorf("the signing key (key id %s) is not the key that signed the latest checkpoint (key id %s): sign the export with the key webhookd serve seals with", seal.KeyID(pub), cp.KeyID)
		}
	}
	leaves, err := ledger.LeafHashes(ctx)
	if err != nil {
		return Manifest{}, err
	}
	if uint64(len(leaves)) < cp.TreeSize {
		return Manifest{}, fmt.Errorf("%w: the latest checkpoint covers %d entries but ledger_index holds %d", seal.ErrIntegrity, cp.TreeSize, len(leaves))
	}
	tree := merkle.NewTree(leaves[:cp.TreeSize])
	if tree.Root() != cp.RootHash {
		return Manifest{}, fmt.Errorf("%w: the stored leaf hashes do not give the latest checkpoint's root; run webhookd verify --db", seal.ErrIntegrity)
	}

	m := Manifest{
		Format: Format, ExportID: opts.ID, CreatedAt: opts.Now().UTC().Truncate(time.Microsecond),
		Actor: opts.Actor, From: rfc3339OrEmpty(opts.From), To: rfc3339OrEmpty(opts.To),
		User: opts.User, Types: opts.Types, Redacted: opts.Redact,
		Complete: opts.User == "" && len(opts.Types) == 0, TreeSize: cp.TreeSize,
		Files: map[string]FileDigest{},
	}
	sel := Selection{Below: cp.TreeSize, ReceivedFrom: opts.From, ReceivedTo: opts.To, User: opts.User, Types: opts.Types}
	total := int64(-1)
	if m.Complete {
		// A complete export is a contiguous run of indexes: from the first
		// to the last entry received in the range, every entry between
		// (received_at order and commit order differ by moments).
		first, last, ok, err := ledger.SealedIndexRange(ctx, sel)
		if err != nil {
			return Manifest{}, err
		}
		if !ok {
			first, last = 1, 0
		}
		sel = Selection{Below: cp.TreeSize, FirstIndex: first, LastIndex: last, HasIndexRange: true}
		total = int64(last) + 1 - int64(first)
	}
	if opts.Total != nil {
		opts.Total(total)
	}

	dir, cleanup, err := prepareOutput(opts.Dir, opts.Archive)
	if err != nil {
		return Manifest{}, err
	}
	defer cleanup()
	w, err := newBundleWriter(dir)
	if err != nil {
		return Manifest{}, err
	}
	defer w.abort()
	err = ledger.EachSealed(ctx, sel, func(r SealedRow) error {
		e := seal.EntryFromLedger(r.Entry)
		e.LedgerIndex = r.Index
		e.LeafHash = r.LeafHash
		if opts.Redact {
			RedactEntry(&e)
			m.RedactedEntries++
		}
		path, err := tree.InclusionProof(r.Index, cp.TreeSize)
		if err != nil {
			return err
		}
		if err := w.write(&e, seal.Proof{LedgerIndex: r.Index, LeafHash: r.LeafHash, TreeSize: cp.TreeSize, Path: path}); err != nil {
			return err
		}
		if m.Entries == 0 {
			m.FirstIndex = ptr(r.Index)
		}
		m.LastIndex = ptr(r.Index)
		m.Entries++
		if opts.Progress != nil {
			opts.Progress.Add(1)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, err
	}
	if err := w.finish(m.Files); err != nil {
		return Manifest{}, err
	}
	cpJSON, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	files := map[string][]byte{CheckpointFile: append(cpJSON, '\n'), PublicKeyFile: seal.EncodePublicKeyPEM(cp.PublicKey)}
	if cp.Note != "" {
		cosigs, err := ledger.Cosignatures(ctx, cp.TreeSize)
		if err != nil {
			return Manifest{}, err
		}
		files[CheckpointNoteFile] = []byte(seal.Cosigned(cp, cosigs))
	}
	for name, data := range files {
		if err := writeFile(dir, name, data, m.Files); err != nil {
			return Manifest{}, err
		}
	}
	mJSON, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	mJSON = append(mJSON, '\n')
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), mJSON, 0o644); err != nil {
		return Manifest{}, err
	}
	if opts.Key != nil {
		sig, err := json.Marshal(SignManifest(opts.Key, mJSON))
		if err != nil {
			return Manifest{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, ManifestSignatureFile), append(sig, '\n'), 0o644); err != nil {
			return Manifest{}, err
		}
	}
	if opts.Archive != "" {
		if err := WriteArchive(dir, opts.Archive, m.CreatedAt); err != nil {
			return Manifest{}, err
		}
	}
	if opts.Record != nil {
		event, err := ExportEvent(m, opts.Now())
		if err != nil {
			return Manifest{}, err
		}
		seal.SignInternalEntry(opts.Key, &event)
		if _, err := opts.Record.Append(ctx, event); err != nil {
			return Manifest{}, fmt.Errorf("record the export in the ledger: %w", err)
		}
	}
	return m, nil
}

func ptr[T any](v T) *T { return &v }

func rfc3339OrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// RedactEntry replaces e's payload by a redacted JSON rendering of it: the
// same rules as the log redaction (personal keys and personal-shaped
// strings become "[REDACTED]"; ids, types and timestamps stay). The raw
// payload is dropped, so the leaf hash can no longer be recomputed from the
// entry: the bundle keeps the sealed leaf hash and marks the entry redacted,
// and a verifier checks that hash's inclusion only.
func RedactEntry(e *seal.Entry) {
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	dec.UseNumber()
	var v any
	var out []byte
	if err := dec.Decode(&v); err == nil {
		out, err = json.Marshal(redact.Value(v))
		if err != nil {
			out = nil
		}
	}
	if out == nil {
		out, _ = json.Marshal(redact.Redacted)
	}
	e.Payload = nil
	e.Redacted = true
	e.RedactedPayload = out
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// prepareOutput returns the directory to write the bundle files into: dir
// itself, or for an archive a new scratch directory beside it, which
// cleanup removes.
func prepareOutput(dir, archive string) (string, func(), error) {
	if archive == "" {
		return dir, func() {}, prepareDir(dir)
	}
	if dir != "" {
		return "", nil, errors.New("give an output directory or an archive, not both")
	}
	if _, err := os.Lstat(archive); !errors.Is(err, os.ErrNotExist) {
		if err == nil {
			err = fmt.Errorf("output archive %s already exists", archive)
		}
		return "", nil, err
	}
	parent := filepath.Dir(archive)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	scratch, err := os.MkdirTemp(parent, ".webhookd-export-*")
	if err != nil {
		return "", nil, err
	}
	return scratch, func() { _ = os.RemoveAll(scratch) }, nil
}

func prepareDir(dir string) error {
	if dir == "" {
		return errors.New("no output directory given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("output directory %s is not empty", dir)
	}
	return nil
}

// hashedFile is a bundle file being written, hashed as it goes.
type hashedFile struct {
	name string
	f    *os.File
	buf  *bufio.Writer
	h    io.Writer
	sum  func() []byte
	n    int64
}

func createHashed(dir, name string) (*hashedFile, error) {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	d := sha256.New()
	return &hashedFile{name: name, f: f, buf: bufio.NewWriterSize(io.MultiWriter(f, d), 1<<16), h: d, sum: func() []byte { return d.Sum(nil) }}, nil
}

func (h *hashedFile) Write(p []byte) (int, error) {
	n, err := h.buf.Write(p)
	h.n += int64(n)
	return n, err
}

func (h *hashedFile) close(files map[string]FileDigest) error {
	if err := h.buf.Flush(); err != nil {
		return err
	}
	if err := h.f.Close(); err != nil {
		return err
	}
	files[h.name] = FileDigest{SHA256: hex.EncodeToString(h.sum()), Bytes: h.n}
	return nil
}

func writeFile(dir, name string, data []byte, files map[string]FileDigest) error {
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	files[name] = FileDigest{SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(data))}
	return nil
}

// csvHeader is the first row of entries.csv.
var csvHeader = []string{"ledger_index", "offset", "leaf_hash", "svix_id", "source", "svix_timestamp", "signature",
	"event_type", "subject_id", "instance_id", "event_time", "timestamp_unit", "received_at", "source_ip", "redacted", "payload"}

type bundleWriter struct {
	entries, proofs, csvFile *hashedFile
	csv                      *csv.Writer
	entriesEnc, proofsEnc    *json.Encoder
}

func newBundleWriter(dir string) (*bundleWriter, error) {
	w := &bundleWriter{}
	var err error
	if w.entries, err = createHashed(dir, EntriesFile); err != nil {
		return nil, err
	}
	if w.proofs, err = createHashed(dir, ProofsFile); err != nil {
		return nil, err
	}
	if w.csvFile, err = createHashed(dir, EntriesCSVFile); err != nil {
		return nil, err
	}
	w.csv = csv.NewWriter(w.csvFile)
	w.entriesEnc = json.NewEncoder(w.entries)
	w.proofsEnc = json.NewEncoder(w.proofs)
	return w, w.csv.Write(csvHeader)
}

func (w *bundleWriter) write(e *seal.Entry, p seal.Proof) error {
	if err := w.entriesEnc.Encode(e); err != nil {
		return err
	}
	if err := w.proofsEnc.Encode(p); err != nil {
		return err
	}
	payload := string(e.RedactedPayload)
	if !e.Redacted {
		payload = string(e.Payload)
		if !utf8.ValidString(payload) {
			payload = "base64:" + string(mustJSON(e.Payload))
		}
	}
	return w.csv.Write([]string{strconv.FormatUint(e.LedgerIndex, 10), strconv.FormatInt(e.Offset, 10), e.LeafHash.String(),
		e.SvixID, e.Source, e.SvixTimestamp, e.Signature, e.EventType, e.SubjectID, e.InstanceID, e.EventTime,
		e.TimestampUnit, e.ReceivedAt, e.SourceIP, strconv.FormatBool(e.Redacted), payload})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (w *bundleWriter) finish(files map[string]FileDigest) error {
	w.csv.Flush()
	if err := w.csv.Error(); err != nil {
		return err
	}
	for _, f := range []*hashedFile{w.entries, w.proofs, w.csvFile} {
		if err := f.close(files); err != nil {
			return err
		}
	}
	w.entries, w.proofs, w.csvFile = nil, nil, nil
	return nil
}

// abort closes files left open by a failed export.
func (w *bundleWriter) abort() {
	for _, f := range []*hashedFile{w.entries, w.proofs, w.csvFile} {
		if f != nil {
			_ = f.f.Close()
		}
	}
}
