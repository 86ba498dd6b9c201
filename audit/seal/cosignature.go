package seal

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Cosignature is a witness's C2SP tlog-cosignature/v1 on a checkpoint
// (https://c2sp.org/tlog-cosignature): the witness saw the checkpoint of
// TreeSize and checked it consistent with every checkpoint of the log it
// cosigned before.
type Cosignature struct {
	TreeSize uint64 `json:"tree_size"`
	// Witness is the witness key's name, KeyHash its note key hash.
	Witness string `json:"witness"`
	KeyHash uint32 `json:"key_hash"`
	// Signature is the base64 of the note signature (key hash, timestamp,
	// Ed25519 signature), as on the note's signature line.
	Signature string `json:"signature"`
	// ReceivedAt is when webhookd stored it.
	ReceivedAt time.Time `json:"received_at"`
}

// Line is the cosignature's signature line in a signed note.
func (c Cosignature) Line() string { return "— " + c.Witness + " " + c.Signature + "\n" }

// Cosigned returns the checkpoint's note with the cosignatures' lines
// appended: a signed note carrying the log's signature and the witnesses',
// which standard tools open with any of those keys.
func Cosigned(cp Checkpoint, cosigs []Cosignature) string {
	var b strings.Builder
	b.WriteString(cp.Note)
	for _, c := range cosigs {
		b.WriteString(c.Line())
	}
	return b.String()
}

// ParseWitnessKeys reads witness verifier keys ("<name>+<hash>+<base64>",
// as `webhookd keygen --witness` prints them, Ed25519 or Ed25519
// cosignature/v1), separated by spaces, commas or newlines.
func ParseWitnessKeys(spec string) ([]note.Verifier, error) {
	var out []note.Verifier
	for _, k := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("witness key %q: %v", k, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// ErrNoCosignature is matched by CheckCosignatures' error when a required
// witness has not cosigned.
var ErrNoCosignature = errors.New("no cosignature")

// OpenCosigned opens signedNote, which must carry cp's note text and a
// valid signature by cp's key, and returns the valid cosignatures on it by
// the witnesses (signatures by other keys are ignored; a signature by one
// of these keys that does not verify fails).
func OpenCosigned(cp Checkpoint, signedNote []byte, witnesses []note.Verifier) ([]Cosignature, error) {
	logV, err := LogVerifier(cp.Origin, cp.PublicKey)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(signedNote, note.VerifierList(append([]note.Verifier{logV}, witnesses...)...))
	if err != nil {
		return nil, fmt.Errorf("signed note: %v", err)
	}
	if n.Text != cp.NoteText() {
		return nil, fmt.Errorf("the note is not the checkpoint of tree size %d", cp.TreeSize)
	}
	var out []Cosignature
	logSigned := false
	for _, s := range n.Sigs {
		if s.Name == logV.Name() && s.Hash == logV.KeyHash() {
			logSigned = true
			continue
		}
		out = append(out, Cosignature{TreeSize: cp.TreeSize, Witness: s.Name, KeyHash: s.Hash, Signature: s.Base64})
	}
	if !logSigned {
		return nil, fmt.Errorf("the note of tree size %d is not signed by the log's key", cp.TreeSize)
	}
	return out, nil
}

// CheckCosignatures checks that every witness has a valid cosignature on
// cp among cosigs, and returns the first that does not.
func CheckCosignatures(cp Checkpoint, cosigs []Cosignature, witnesses []note.Verifier) error {
	if cp.Note == "" {
		if len(witnesses) > 0 {
			return fmt.Errorf("checkpoint of tree size %d is not a signed note, so no witness can have cosigned it: %w", cp.TreeSize, ErrNoCosignature)
		}
		return nil
	}
	valid, err := OpenCosigned(cp, []byte(Cosigned(cp, cosigs)), witnesses)
	if err != nil {
		return err
	}
	for _, w := range witnesses {
		found := false
		for _, c := range valid {
			found = found || (c.Witness == w.Name() && c.KeyHash == w.KeyHash())
		}
		if !found {
			return fmt.Errorf("checkpoint of tree size %d has no valid cosignature by witness %s (key hash %08x): %w", cp.TreeSize, w.Name(), w.KeyHash(), ErrNoCosignature)
		}
	}
	return nil
}

// ParseNoteCheckpoint reads a checkpoint note signed by the log verifier v
// (origin is v's name) and returns its size and root.
func ParseNoteCheckpoint(signedNote []byte, v note.Verifier) (*log.Checkpoint, *note.Note, error) {
	cp, _, n, err := log.ParseCheckpoint(signedNote, v.Name(), v)
	if err != nil {
		return nil, nil, err
	}
	if len(cp.Hash) != 32 {
		return nil, nil, fmt.Errorf("checkpoint root hash has %d bytes, want 32", len(cp.Hash))
	}
	return cp, n, nil
}
