package seal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"encoding/json"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrWitnessRefused is matched by a witness round's error when the log
// offered a checkpoint the witness must not cosign: smaller than the one it
// cosigned last (rollback), the same size with another root (fork), a
// consistency proof that does not verify (fork), or a checkpoint not
// signed by the log's key.
var ErrWitnessRefused = errors.New("witness refused the checkpoint")

// Witness is one auditor's witness of one log: it remembers the last
// checkpoint it cosigned (StatePath, a signed note holding the log's
// signature and its own) and cosigns a new checkpoint only when a
// consistency proof shows it extends that one.
type Witness struct {
	// LogURL is the webhookd base URL, e.g. https://hooks.example.com.
	LogURL string
	// Log verifies the log's checkpoint notes; its name is the origin.
	Log note.Verifier
	// Signer cosigns (tlog-cosignature/v1, see
	// github.com/transparency-dev/formats/note.NewSignerForCosignatureV1).
	Signer note.Signer
	// StatePath is the witness's state file (created 0600 when missing).
	StatePath string
	// Client defaults to a client with a 30 s timeout.
	Client *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// maxNoteBytes bounds what the witness reads from the log.
const maxNoteBytes = 64 << 10

func (w *Witness) client() *http.Client {
	if w.Client != nil {
		return w.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (w *Witness) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

func (w *Witness) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(w.LogURL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNoteBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// refuse logs what the witness saw and returns an ErrWitnessRefused error.
func (w *Witness) refuse(reason string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	w.logger().Error("witness_refused", slog.String("reason", reason), slog.String("origin", w.Log.Name()), slog.String("error", msg))
	return fmt.Errorf("%w: %s: %s", ErrWitnessRefused, reason, msg)
}

// Once runs one round: fetch the log's latest checkpoint, check it against
// the state, cosign it, keep it as the new state and post the cosignature
// to the log. It returns the cosigned tree size. On a refusal the state is
// left as it was.
func (w *Witness) Once(ctx context.Context) (uint64, error) {
	body, err := w.get(ctx, CheckpointPath)
	if err != nil {
		return 0, err
	}
	cp, n, err := ParseNoteCheckpoint(body, w.Log)
	if err != nil {
		return 0, w.refuse("bad_signature", "the log's checkpoint does not verify with its key: %v", err)
	}
	var oldSize uint64
	var oldRoot []byte
	switch state, err := os.ReadFile(w.StatePath); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, err
	default:
		old, _, err := ParseNoteCheckpoint(state, w.Log)
		if err != nil {
			return 0, fmt.Errorf("witness state %s: %v", w.StatePath, err)
		}
		oldSize, oldRoot = old.Size, old.Hash
	}
	switch {
	case cp.Size < oldSize:
		return 0, w.refuse("rollback", "the log offers tree size %d (root %x) but this witness cosigned tree size %d (root %x)", cp.Size, cp.Hash, oldSize, oldRoot)
	case cp.Size == oldSize && oldSize > 0 && !bytes.Equal(cp.Hash, oldRoot):
		return 0, w.refuse("fork", "the log offers tree size %d with root %x but this witness cosigned root %x for that size", cp.Size, cp.Hash, oldRoot)
	case cp.Size > oldSize && oldSize > 0:
		raw, err := w.get(ctx, ConsistencyProofPath+"?"+url.Values{"from": {fmt.Sprint(oldSize)}, "to": {fmt.Sprint(cp.Size)}}.Encode())
		if err != nil {
			return 0, err
		}
		var p ProofResponse
		if err := json.Unmarshal(raw, &p); err != nil {
			return 0, w.refuse("bad_proof", "the consistency proof from %d to %d is not readable: %v", oldSize, cp.Size, err)
		}
		hashes := make([][]byte, len(p.Proof))
		for i := range p.Proof {
			hashes[i] = p.Proof[i][:]
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, cp.Size, hashes, oldRoot, cp.Hash); err != nil {
			// The library's error lists hashes as byte arrays; the roots
			// above say the same in hex.
			return 0, w.refuse("fork", "tree size %d (root %x) is not consistent with tree size %d (root %x) that this witness cosigned: the consistency proof does not verify", cp.Size, cp.Hash, oldSize, oldRoot)
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, w.Signer)
	if err != nil {
		return 0, err
	}
	if err := WriteFileAtomic(w.StatePath, cosigned, 0o600); err != nil {
		return 0, fmt.Errorf("witness state: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(w.LogURL, "/")+CosignaturesPath, bytes.NewReader(cosigned))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.client().Do(req)
	if err != nil {
		return cp.Size, fmt.Errorf("cosigned tree size %d but could not hand the cosignature back: %w", cp.Size, err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxNoteBytes))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cp.Size, fmt.Errorf("cosigned tree size %d but the log refused the cosignature: %s: %s", cp.Size, resp.Status, bytes.TrimSpace(answer))
	}
	w.logger().Info("checkpoint_cosigned", slog.String("origin", cp.Origin), slog.Uint64("tree_size", cp.Size),
		slog.String("root_hash", fmt.Sprintf("%x", cp.Hash)), slog.Uint64("previous_tree_size", oldSize))
	return cp.Size, nil
}
