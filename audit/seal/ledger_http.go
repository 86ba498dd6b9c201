package seal

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/domain"
)

// Paths of the ledger's tamper-evidence endpoints.
const (
	// CheckpointPath serves the latest checkpoint as a signed note (with
	// the cosignatures stored for it), text/plain.
	CheckpointPath = "/ledger/checkpoint"
	// CheckpointJSONPath serves the latest checkpoint as JSON with the
	// log's keys.
	CheckpointJSONPath = "/ledger/checkpoint.json"
	// ConsistencyProofPath serves ?from=M&to=N.
	ConsistencyProofPath = "/ledger/proof/consistency"
	// InclusionProofPath serves ?index=I&tree_size=N.
	InclusionProofPath = "/ledger/proof/inclusion"
	// CosignaturesPath takes a witness's cosigned checkpoint note (POST).
	CosignaturesPath = "/ledger/cosignatures"
)

// maxCosignatureBody bounds a POST to CosignaturesPath.
const maxCosignatureBody = 64 << 10

// LedgerProofs is what the ledger endpoints read and write;
// *eventstore.Store is one.
type LedgerProofs interface {
	// LatestCheckpoint returns a domain.ENOTFOUND error when there is none.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// CheckpointAt returns a domain.ENOTFOUND error when there is none.
	CheckpointAt(ctx context.Context, size uint64) (Checkpoint, error)
	Cosignatures(ctx context.Context, size uint64) ([]Cosignature, error)
	AppendCosignatures(ctx context.Context, cosigs []Cosignature) (int, error)
	// LeafHashes returns every stored leaf hash in index order.
	LeafHashes(ctx context.Context) ([]merkle.Hash, error)
}

// LedgerHandlers serves the checkpoint, proofs and cosignatures of one
// log.
type LedgerHandlers struct {
	Ledger LedgerProofs
	Key    LogKey
	// Witnesses are the witness keys whose cosignatures are accepted
	// (WEBHOOKD_WITNESS_KEYS); without any, POST is refused.
	Witnesses []note.Verifier
	Logger    *slog.Logger
}

// CheckpointResponse is the JSON answer of GET /ledger/checkpoint.json.
type CheckpointResponse struct {
	// Checkpoint is the latest signed checkpoint, null before the first.
	Checkpoint *Checkpoint `json:"checkpoint"`
	// Cosignatures are the witnesses' cosignatures stored for it.
	Cosignatures []Cosignature `json:"cosignatures"`
	// PublicKey is the key this webhookd signs with (base64 of 32 bytes).
	PublicKey ed25519.PublicKey `json:"public_key"`
	// PublicKeyPEM is the same key as a PEM PUBLIC KEY block.
	PublicKeyPEM string `json:"public_key_pem"`
	KeyID        string `json:"key_id"`
	// Origin is the log's name in its notes; VerifierKey its signed-note
	// verifier key (what witnesses and verify --log-key take).
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
}

// ProofResponse is the JSON answer of the proof endpoints. Hashes are hex.
type ProofResponse struct {
	// For a consistency proof: From and To are the tree sizes.
	From *uint64 `json:"from,omitempty"`
	To   *uint64 `json:"to,omitempty"`
	// For an inclusion proof: the leaf's index and hash, in a tree of
	// TreeSize leaves.
	Index    *uint64      `json:"index,omitempty"`
	TreeSize *uint64      `json:"tree_size,omitempty"`
	LeafHash *merkle.Hash `json:"leaf_hash,omitempty"`
	// Proof is the RFC 6962 proof, in order.
	Proof []merkle.Hash `json:"proof"`
}

// Register adds the endpoints to mux-like h.
func (h LedgerHandlers) Register(handle func(pattern string, handler http.Handler)) {
	handle("GET "+CheckpointPath, http.HandlerFunc(h.checkpointNote))
	handle("GET "+CheckpointJSONPath, http.HandlerFunc(h.checkpointJSON))
	handle("GET "+ConsistencyProofPath, http.HandlerFunc(h.consistency))
	handle("GET "+InclusionProofPath, http.HandlerFunc(h.inclusion))
	handle("POST "+CosignaturesPath, http.HandlerFunc(h.cosign))
}

func writeJSONAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error as every webhookd error answer is: JSON with
// error, reason, message and an error_id, which its log line carries too.
func (h LedgerHandlers) writeError(w http.ResponseWriter, status int, code, reason, message string) {
	id := domain.NewErrorID(time.Now())
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	if h.Logger != nil {
		h.Logger.Log(context.Background(), level, "ledger_request_rejected", slog.Int("status", status),
			slog.String("reason", reason), slog.String("error_id", id))
	}
	writeJSONAnswer(w, status, map[string]string{"error": code, "reason": reason, "message": message, "error_id": id})
}

// unavailable answers 503 for a database failure, logged without detail
// that could hold personal data.
func (h LedgerHandlers) unavailable(w http.ResponseWriter, what string, err error) {
	h.Logger.Error("ledger_read_failed", slog.String("what", what), slog.String("error", redact.SafeError(err)))
	w.Header().Set("Retry-After", "5")
	h.writeError(w, http.StatusServiceUnavailable, "unavailable", "database_unavailable", "cannot read "+what)
}

func (h LedgerHandlers) checkpointNote(w http.ResponseWriter, r *http.Request) {
	cp, err := h.Ledger.LatestCheckpoint(r.Context())
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		h.writeError(w, http.StatusNotFound, "not_found", "no_checkpoint", "the ledger has no checkpoint yet")
		return
	case err != nil:
		h.unavailable(w, "the latest checkpoint", err)
		return
	case cp.Note == "":
		h.writeError(w, http.StatusNotFound, "not_found", "no_checkpoint_note", "the latest checkpoint was signed before checkpoints were signed notes; the next one will be")
		return
	}
	cosigs, err := h.Ledger.Cosignatures(r.Context(), cp.TreeSize)
	if err != nil {
		h.unavailable(w, "cosignatures", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, Cosigned(cp, cosigs))
}

func (h LedgerHandlers) checkpointJSON(w http.ResponseWriter, r *http.Request) {
	pub := h.Key.Public()
	resp := CheckpointResponse{PublicKey: pub, PublicKeyPEM: string(EncodePublicKeyPEM(pub)), KeyID: KeyID(pub),
		Origin: h.Key.Origin, VerifierKey: h.Key.VerifierKey(), Cosignatures: []Cosignature{}}
	cp, err := h.Ledger.LatestCheckpoint(r.Context())
	switch {
	case err == nil:
		resp.Checkpoint = &cp
		cosigs, err := h.Ledger.Cosignatures(r.Context(), cp.TreeSize)
		if err != nil {
			h.unavailable(w, "cosignatures", err)
			return
		}
		resp.Cosignatures = append(resp.Cosignatures, cosigs...)
	case domain.ErrorCode(err) != domain.ENOTFOUND:
		h.unavailable(w, "the latest checkpoint", err)
		return
	}
	writeJSONAnswer(w, http.StatusOK, resp)
}

// sizes reads the named non-negative integer query parameters.
func sizes(r *http.Request, names ...string) ([]uint64, error) {
	out := make([]uint64, len(names))
	for i, n := range names {
		v, err := strconv.ParseUint(r.URL.Query().Get(n), 10, 63)
		if err != nil {
			return nil, fmt.Errorf("query parameter %s must be a non-negative integer", n)
		}
		out[i] = v
	}
	return out, nil
}

// provable loads the leaves when size is at most the latest checkpoint's
// (proofs are given against signed sizes only), answering otherwise.
func (h LedgerHandlers) provable(w http.ResponseWriter, r *http.Request, size uint64) (*merkle.Tree, []merkle.Hash) {
	cp, err := h.Ledger.LatestCheckpoint(r.Context())
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		h.unavailable(w, "the latest checkpoint", err)
		return nil, nil
	}
	if size > cp.TreeSize {
		h.writeError(w, http.StatusBadRequest, "invalid", "beyond_checkpoint", fmt.Sprintf("tree size %d is beyond the latest checkpoint (tree size %d)", size, cp.TreeSize))
		return nil, nil
	}
	// O(n): every stored leaf is read for each proof.
	leaves, err := h.Ledger.LeafHashes(r.Context())
	if err != nil {
		h.unavailable(w, "the ledger index", err)
		return nil, nil
	}
	if uint64(len(leaves)) < size {
		h.writeError(w, http.StatusInternalServerError, "internal", "integrity", fmt.Sprintf("ledger_index holds %d entries, fewer than the checkpoint's %d", len(leaves), size))
		return nil, nil
	}
	return merkle.NewTree(leaves[:size]), leaves[:size]
}

func (h LedgerHandlers) consistency(w http.ResponseWriter, r *http.Request) {
	v, err := sizes(r, "from", "to")
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", err.Error())
		return
	}
	from, to := v[0], v[1]
	if from > to {
		h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", "from must not be larger than to")
		return
	}
	tree, _ := h.provable(w, r, to)
	if tree == nil {
		return
	}
	proof := []merkle.Hash{}
	if from > 0 && from < to {
		if proof, err = tree.ConsistencyProof(from, to); err != nil {
			h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", err.Error())
			return
		}
	}
	writeJSONAnswer(w, http.StatusOK, ProofResponse{From: &from, To: &to, Proof: proof})
}

func (h LedgerHandlers) inclusion(w http.ResponseWriter, r *http.Request) {
	v, err := sizes(r, "index", "tree_size")
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", err.Error())
		return
	}
	index, size := v[0], v[1]
	if index >= size {
		h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", "index must be smaller than tree_size")
		return
	}
	tree, leaves := h.provable(w, r, size)
	if tree == nil {
		return
	}
	proof, err := tree.InclusionProof(index, size)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "invalid", "bad_query", err.Error())
		return
	}
	leaf := leaves[index]
	writeJSONAnswer(w, http.StatusOK, ProofResponse{Index: &index, TreeSize: &size, LeafHash: &leaf, Proof: proof})
}

// CosignResponse is the answer to a POST of cosignatures.
type CosignResponse struct {
	TreeSize uint64 `json:"tree_size"`
	// Accepted counts the valid cosignatures by configured witnesses,
	// Stored those not stored before.
	Accepted int `json:"accepted"`
	Stored   int `json:"stored"`
}

func (h LedgerHandlers) cosign(w http.ResponseWriter, r *http.Request) {
	if len(h.Witnesses) == 0 {
		h.writeError(w, http.StatusForbidden, "forbidden", "no_witnesses", "this webhookd has no witness keys configured (WEBHOOKD_WITNESS_KEYS)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCosignatureBody))
	if err != nil {
		h.writeError(w, http.StatusRequestEntityTooLarge, "invalid", "body_too_large", fmt.Sprintf("a cosigned checkpoint is at most %d bytes", maxCosignatureBody))
		return
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal(body); err != nil || c.Origin != h.Key.Origin {
		h.writeError(w, http.StatusBadRequest, "invalid", "not_a_checkpoint", "the body is not a signed checkpoint note of this log ("+h.Key.Origin+")")
		return
	}
	cp, err := h.Ledger.CheckpointAt(r.Context(), c.Size)
	switch {
	case domain.ErrorCode(err) == domain.ENOTFOUND:
		h.writeError(w, http.StatusNotFound, "not_found", "unknown_checkpoint", fmt.Sprintf("the ledger has no checkpoint of tree size %d", c.Size))
		return
	case err != nil:
		h.unavailable(w, "the checkpoint", err)
		return
	}
	if cp.Note == "" {
		h.writeError(w, http.StatusNotFound, "not_found", "unknown_checkpoint", fmt.Sprintf("the checkpoint of tree size %d is not a signed note", c.Size))
		return
	}
	cosigs, err := OpenCosigned(cp, body, h.Witnesses)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, "invalid", "invalid_cosignature", err.Error())
		return
	}
	if len(cosigs) == 0 {
		h.writeError(w, http.StatusBadRequest, "invalid", "no_known_witness", "the note carries no cosignature by a configured witness key")
		return
	}
	stored, err := h.Ledger.AppendCosignatures(r.Context(), cosigs)
	if err != nil {
		h.unavailable(w, "cosignatures", err)
		return
	}
	for _, c := range cosigs {
		h.Logger.Info("cosignature_accepted", slog.Uint64("tree_size", c.TreeSize), slog.String("witness", c.Witness))
	}
	writeJSONAnswer(w, http.StatusOK, CosignResponse{TreeSize: cp.TreeSize, Accepted: len(cosigs), Stored: stored})
}
