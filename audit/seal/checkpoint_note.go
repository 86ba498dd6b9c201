package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/webhookd/webhookd/audit/merkle"
)

// Checkpoints are also C2SP tlog-checkpoint signed notes
// (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note): the
// note text is "<origin>\n<tree size>\n<base64 root hash>\n", signed with
// the same Ed25519 key under the key name <origin>. Standard tools
// (golang.org/x/mod/sumdb/note, github.com/transparency-dev/formats/log)
// and witnesses read them.

// noteKeyPrefix starts a signed-note private key.
const noteKeyPrefix = "PRIVATE+KEY+"

// algEd25519 is the signed-note algorithm byte of an Ed25519 key.
const algEd25519 = 1

// DefaultOrigin is the checkpoint origin (and note key name) used when
// WEBHOOKD_LOG_ORIGIN is not set: "webhookd/<key id>", unique to the key.
func DefaultOrigin(pub ed25519.PublicKey) string { return "webhookd/" + KeyID(pub) }

// CheckOrigin refuses an origin that cannot be a note key name (empty,
// spaces, '+').
func CheckOrigin(origin string) error {
	if _, err := note.NewEd25519VerifierKey(origin, make(ed25519.PublicKey, ed25519.PublicKeySize)); err != nil || strings.ContainsAny(origin, "\n") {
		return fmt.Errorf("log origin %q is not a valid signed-note key name (no spaces, no '+', not empty)", origin)
	}
	return nil
}

// VerifierKey returns the signed-note verifier key of the log whose
// checkpoints key signs under origin ("<origin>+<hash>+<base64>"), which
// witnesses and `webhookd witness --log-key` take.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(origin, pub)
}

// NoteSigningKey writes key in signed-note private key form
// ("PRIVATE+KEY+<origin>+<hash>+<base64>"), which WEBHOOKD_SIGNING_KEY
// also takes.
func NoteSigningKey(origin string, key ed25519.PrivateKey) (string, error) {
	vkey, err := VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	// vkey is "<origin>+<8 hex digits of key hash>+<base64>".
	hash := vkey[len(origin)+1 : len(origin)+9]
	return noteKeyPrefix + origin + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, key.Seed()...)), nil
}

// parseNoteSigningKey reads a signed-note Ed25519 private key; ok is false
// when s is not in that form at all.
func parseNoteSigningKey(s string) (key ed25519.PrivateKey, name string, ok bool, err error) {
	if !strings.HasPrefix(s, noteKeyPrefix) {
		return nil, "", false, nil
	}
	if _, err := note.NewSigner(s); err != nil {
		return nil, "", true, errors.New("WEBHOOKD_SIGNING_KEY: not a valid signed-note private key")
	}
	// "PRIVATE+KEY+<name>+<hash>+<base64>"; a name has no '+'.
	name, rest, _ := strings.Cut(strings.TrimPrefix(s, noteKeyPrefix), "+")
	_, key64, _ := strings.Cut(rest, "+")
	raw, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, "", true, errors.New("WEBHOOKD_SIGNING_KEY: the signed-note private key is not an Ed25519 key")
	}
	return ed25519.NewKeyFromSeed(raw[1:]), name, true, nil
}

// LogKey is the key that signs checkpoints and the origin it signs them
// under.
type LogKey struct {
	Key    ed25519.PrivateKey
	Origin string
}

// ParseLogKey reads WEBHOOKD_SIGNING_KEY (see ParseSigningKey; a signed-note
// private key "PRIVATE+KEY+<name>+…" is accepted too, directly or in a
// file) and WEBHOOKD_LOG_ORIGIN. The origin is origin when given, else the
// note key's name, else DefaultOrigin. A note key whose name differs from
// a given origin is refused: the note key name is the origin.
func ParseLogKey(value, origin string) (LogKey, error) {
	value = strings.TrimSpace(value)
	text := value
	if !strings.HasPrefix(text, noteKeyPrefix) {
		if data, err := readKeyFile(value); err == nil && bytes.HasPrefix(data, []byte(noteKeyPrefix)) {
			text = string(data)
		}
	}
	key, name, isNote, err := parseNoteSigningKey(text)
	if err != nil {
		return LogKey{}, err
	}
	if !isNote {
		if key, err = ParseSigningKey(value); err != nil {
			return LogKey{}, err
		}
	}
	switch {
	case origin == "" && isNote:
		origin = name
	case origin == "":
		origin = DefaultOrigin(key.Public().(ed25519.PublicKey))
	case isNote && origin != name:
		return LogKey{}, fmt.Errorf("WEBHOOKD_LOG_ORIGIN %q differs from the signing key's note name %q: they must be the same", origin, name)
	}
	if err := CheckOrigin(origin); err != nil {
		return LogKey{}, fmt.Errorf("WEBHOOKD_LOG_ORIGIN: %w", err)
	}
	return LogKey{Key: key, Origin: origin}, nil
}

// Public is the key's public half.
func (k LogKey) Public() ed25519.PublicKey { return k.Key.Public().(ed25519.PublicKey) }

// VerifierKey is the note verifier key of the log (see VerifierKey).
func (k LogKey) VerifierKey() string {
	v, err := VerifierKey(k.Origin, k.Public())
	if err != nil {
		panic(err) // the origin was checked by ParseLogKey
	}
	return v
}

// LogVerifier returns the note verifier of checkpoints signed by pub under
// origin.
func LogVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// signNote returns the checkpoint {origin, size, root} as a signed note.
func signNote(key ed25519.PrivateKey, origin string, size uint64, root merkle.Hash) (string, error) {
	skey, err := NoteSigningKey(origin, key)
	if err != nil {
		return "", err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return "", err
	}
	text := log.Checkpoint{Origin: origin, Size: size, Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, signer)
	return string(signed), err
}

// verifyNote checks that c.Note is signed by c's key under c.Origin and
// says c's tree size and root hash.
func (c Checkpoint) verifyNote() error {
	v, err := LogVerifier(c.Origin, c.PublicKey)
	if err != nil {
		return fmt.Errorf("checkpoint of tree size %d: origin %q: %v", c.TreeSize, c.Origin, err)
	}
	got, _, _, err := log.ParseCheckpoint([]byte(c.Note), c.Origin, v)
	if err != nil {
		return fmt.Errorf("checkpoint of tree size %d: signed note: %v", c.TreeSize, err)
	}
	if got.Size != c.TreeSize || !bytes.Equal(got.Hash, c.RootHash[:]) {
		return fmt.Errorf("checkpoint of tree size %d: its signed note says tree size %d, root %x", c.TreeSize, got.Size, got.Hash)
	}
	return nil
}

// NoteText is the text the checkpoint's note signs (without signatures),
// "" for a checkpoint signed before checkpoints were notes.
func (c Checkpoint) NoteText() string {
	if c.Note == "" {
		return ""
	}
	text, _, _ := strings.Cut(c.Note, "\n\n")
	return text + "\n"
}

// WriteFileAtomic replaces path with data: written to a temporary file in
// the same directory, synced, given perm, then renamed over path, so that
// a reader (or a crash) sees the old content or the new, never a part.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
