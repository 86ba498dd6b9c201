package bundle

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
)

// KnownCheckpoint is a checkpoint someone outside the database remembers,
// as a signed note: a witness's state file, or a note saved from GET
// /ledger/checkpoint. The ledger must still hold it: the same root at its
// size.
type KnownCheckpoint struct {
	// Name says where it comes from (a file name), for the report.
	Name string
	Note []byte
}

// ReadKnownCheckpoint reads a KnownCheckpoint from a file.
func ReadKnownCheckpoint(path string) (KnownCheckpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return KnownCheckpoint{}, err
	}
	return KnownCheckpoint{Name: path, Note: data}, nil
}

// openKnown verifies k with one of keys (under the origin its first line
// names) and returns its size and root.
func openKnown(k KnownCheckpoint, keys []ed25519.PublicKey) (uint64, merkle.Hash, error) {
	origin, _, _ := strings.Cut(string(k.Note), "\n")
	for _, pub := range keys {
		v, err := seal.LogVerifier(origin, pub)
		if err != nil {
			return 0, merkle.Hash{}, fmt.Errorf("%s: origin %q: %v", k.Name, origin, err)
		}
		c, _, err := seal.ParseNoteCheckpoint(k.Note, v)
		if err != nil {
			var unknown *note.UnverifiedNoteError
			if errors.As(err, &unknown) || strings.Contains(err.Error(), "no log signature") || strings.Contains(err.Error(), "unknown key") {
				continue
			}
			return 0, merkle.Hash{}, fmt.Errorf("%s: %v", k.Name, err)
		}
		var root merkle.Hash
		copy(root[:], c.Hash)
		return c.Size, root, nil
	}
	return 0, merkle.Hash{}, fmt.Errorf("%s is not a checkpoint signed by the log's key", k.Name)
}

// checkKnown compares a remembered checkpoint with the tree of the
// ledger's leaves (recomputed from its entries) and returns the problem,
// "" when the ledger still holds it.
func checkKnown(k KnownCheckpoint, keys []ed25519.PublicKey, tree *merkle.Tree) string {
	size, root, err := openKnown(k, keys)
	if err != nil {
		return err.Error()
	}
	got, err := tree.RootAt(size)
	if err != nil {
		return fmt.Sprintf("%s: a checkpoint of tree size %d (root %s) was seen, but the ledger has only %d sealed entries: entries or index rows were removed", k.Name, size, root, tree.Size())
	}
	if got != root {
		return fmt.Sprintf("%s: a checkpoint of tree size %d had root %s, the ledger's entries now give %s: entries were altered, removed or reordered", k.Name, size, root, got)
	}
	return ""
}

// checkBundleWitnesses checks the bundle's checkpoint.note (data; nil when
// the bundle has none): that it is the bundle's checkpoint signed by its
// key, and that every witness in opts.Witnesses cosigned it. It returns
// the problems.
func checkBundleWitnesses(data []byte, cp seal.Checkpoint, opts VerifyOptions) ([]string, error) {
	if data == nil {
		if len(opts.Witnesses) > 0 {
			return []string{fmt.Sprintf("the bundle has no %s: no witness cosignature to check", CheckpointNoteFile)}, nil
		}
		return nil, nil
	}
	if cp.Note == "" {
		return []string{fmt.Sprintf("%s is there but %s is not a signed note", CheckpointNoteFile, CheckpointFile)}, nil
	}
	if !bytes.HasPrefix(data, []byte(cp.NoteText())) {
		return []string{fmt.Sprintf("%s is not the checkpoint of %s", CheckpointNoteFile, CheckpointFile)}, nil
	}
	cosigs, err := seal.OpenCosigned(cp, data, opts.Witnesses)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", CheckpointNoteFile, err)}, nil
	}
	if err := seal.CheckCosignatures(cp, cosigs, opts.Witnesses); err != nil {
		return []string{fmt.Sprintf("%s: %v", CheckpointNoteFile, err)}, nil
	}
	return nil, nil
}
