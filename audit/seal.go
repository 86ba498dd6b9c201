package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/domain"
)

// SealLedger is what the sealer needs from the ledger; *eventstore.Store is
// one.
type SealLedger interface {
	// UnsealedEntries returns up to limit committed entries without a
	// ledger index, in safe order (eventstore's order.go): an entry that
	// commits later is never ordered before them.
	UnsealedEntries(ctx context.Context, limit int) ([]domain.LedgerEntry, error)
	// ForEachLeafHash calls fn with every stored leaf hash in index
	// order, streaming them (the sealer keeps only the tree's frontier).
	ForEachLeafHash(ctx context.Context, fn func(leaf merkle.Hash) error) error
	// AppendLeaves stores indexes first, first+1, … for the entries at
	// offsets, atomically; it fails if any is taken or would leave a gap.
	AppendLeaves(ctx context.Context, first uint64, offsets []int64, leaves []merkle.Hash) error
	AppendCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestCheckpoint returns a domain.ENOTFOUND error when there is none.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// UnindexedBehind counts the committed entries that sort at or before
	// the last indexed entry but have no ledger index (rows inserted
	// behind the sealer's position, which it can never index), and
	// returns the offsets of up to limit of them.
	UnindexedBehind(ctx context.Context, limit int) (int64, []int64, error)
}

// LeaderLock is a lock that at most one sealer holds across replicas.
type LeaderLock interface {
	// TryAcquire takes the lock if it is free (true if held afterwards).
	TryAcquire(ctx context.Context) (bool, error)
	// Check fails when the lock has been lost.
	Check(ctx context.Context) error
	Close(ctx context.Context) error
}

// SealerConfig configures a Sealer.
type SealerConfig struct {
	Ledger SealLedger
	// NewLock opens the leadership lock (a dedicated database connection).
	NewLock func(ctx context.Context) (LeaderLock, error)
	// Key signs checkpoints.
	Key ed25519.PrivateKey
	// Interval is how often a checkpoint is signed, when the tree grew.
	// Defaults to 10s.
	Interval time.Duration
	// PollInterval is how often the leader looks for new entries and a
	// follower tries to take the lead. Defaults to 1s.
	PollInterval time.Duration
	// BatchSize is how many entries are indexed per transaction. Defaults
	// to 1000.
	BatchSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now stamps checkpoints (signed_at). Defaults to time.Now.
	Now func() time.Time
	// VerifyOrigin, when set, is called with every entry before it is
	// indexed (OriginVerifier.Verify). An entry it fails is never indexed:
	// the entries before it are, and sealing stops there with an error
	// wrapping ErrIntegrity that names the entry.
	VerifyOrigin func(domain.LedgerEntry) error
	// BehindCheckInterval is how often the leader looks for entries behind
	// its position that have no ledger index (SealLedger.UnindexedBehind,
	// one count over the ledger's primary key): they are an integrity
	// failure. It also looks once when it takes the lead. Defaults to 1m.
	BehindCheckInterval time.Duration
}

func (c *SealerConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BehindCheckInterval <= 0 {
		c.BehindCheckInterval = time.Minute
	}
}

// ErrIntegrity is matched by the errors a sealer returns when the stored
// leaf hashes do not reproduce the last signed checkpoint: someone changed
// the seal tables. The sealer then refuses to seal.
var ErrIntegrity = errors.New("ledger integrity check failed")

// Sealer gives committed ledger entries their ledger index and leaf hash
// and signs checkpoints. Run it in every replica: one leads, the others
// wait for the lock and take over when the leader's connection dies.
type Sealer struct {
	cfg SealerConfig
	// tree is the right edge of the Merkle tree over the indexed
	// entries: O(log n) hashes, enough for the root of every checkpoint.
	tree merkle.Frontier
	// checkpointed is the tree size of the last checkpoint.
	checkpointed uint64
}

// NewSealer returns a sealer; nothing runs until Run.
func NewSealer(cfg SealerConfig) *Sealer {
	cfg.defaults()
	return &Sealer{cfg: cfg}
}

// Run competes for leadership and, while leading, seals, until ctx is done.
// It returns nil when ctx is done; it does not stop on database outages or
// integrity failures, which it logs and retries after Interval.
func (s *Sealer) Run(ctx context.Context) error {
	log := s.cfg.Logger
	for ctx.Err() == nil {
		lock, err := s.cfg.NewLock(ctx)
		if err != nil {
			log.Warn("sealer_lock_unavailable", slog.String("error", SafeError(err)))
			sleep(ctx, s.cfg.PollInterval)
			continue
		}
		err = s.waitAndLead(ctx, lock)
		_ = lock.Close(context.WithoutCancel(ctx))
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrIntegrity):
			log.Error("sealer_integrity_failure", slog.String("error", err.Error()))
			sleep(ctx, s.cfg.Interval)
		case err != nil:
			log.Warn("sealer_lost_leadership", slog.String("error", SafeError(err)))
			sleep(ctx, s.cfg.PollInterval)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (s *Sealer) waitAndLead(ctx context.Context, lock LeaderLock) error {
	for {
		held, err := lock.TryAcquire(ctx)
		if err != nil {
			return err
		}
		if held {
			break
		}
		sleep(ctx, s.cfg.PollInterval)
		if ctx.Err() != nil {
			return nil
		}
	}
	s.cfg.Logger.Info("sealer_leading")
	if err := s.restore(ctx); err != nil {
		return err
	}
	// Scheduling uses the real clock; Now only stamps checkpoints.
	next := time.Now().Add(s.cfg.Interval)
	var nextBehind time.Time // now: once on taking the lead
	for ctx.Err() == nil {
		err := lock.Check(ctx)
		if err == nil {
			err = s.catchUp(ctx)
		}
		if err == nil && !time.Now().Before(nextBehind) {
			err = s.checkBehind(ctx)
			nextBehind = time.Now().Add(s.cfg.BehindCheckInterval)
		}
		if err == nil && !time.Now().Before(next) {
			_, err = s.checkpoint(ctx)
			next = time.Now().Add(s.cfg.Interval)
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		sleep(ctx, s.cfg.PollInterval)
	}
	// Stopping (ctx done, even in the middle of a statement above) leaves
	// a checkpoint of everything indexed so far: the tree holds exactly
	// the leaves whose AppendLeaves returned, so its root is one the
	// stored leaves reproduce.
	_, err := s.checkpoint(context.WithoutCancel(ctx))
	return err
}

// restore rebuilds the tree from the stored leaf hashes and checks it
// against the last checkpoint.
func (s *Sealer) restore(ctx context.Context) error {
	s.tree, s.checkpointed = merkle.Frontier{}, 0
	cp, err := s.cfg.Ledger.LatestCheckpoint(ctx)
	signed := err == nil
	if err != nil && domain.ErrorCode(err) != domain.ENOTFOUND {
		return err
	}
	if signed {
		if err := cp.VerifySignature(); err != nil {
			return fmt.Errorf("%w: last %v", ErrIntegrity, err)
		}
	}
	root := merkle.EmptyRoot() // of the first cp.TreeSize leaves
	if err := s.cfg.Ledger.ForEachLeafHash(ctx, func(leaf merkle.Hash) error {
		s.tree.Append(leaf)
		if signed && s.tree.Size() == cp.TreeSize {
			root = s.tree.Root()
		}
		return nil
	}); err != nil {
		return err
	}
	if !signed {
		return nil
	}
	if s.tree.Size() < cp.TreeSize {
		return fmt.Errorf("%w: the last checkpoint covers %d entries but ledger_index holds %d", ErrIntegrity, cp.TreeSize, s.tree.Size())
	}
	if root != cp.RootHash {
		return fmt.Errorf("%w: the stored leaf hashes give root %s at tree size %d, the signed checkpoint says %s", ErrIntegrity, root, cp.TreeSize, cp.RootHash)
	}
	s.checkpointed = cp.TreeSize
	return nil
}

// catchUp indexes every committed entry.
func (s *Sealer) catchUp(ctx context.Context) error {
	for {
		batch, err := s.cfg.Ledger.UnsealedEntries(ctx, s.cfg.BatchSize)
		if err != nil || len(batch) == 0 {
			return err
		}
		full := len(batch) == s.cfg.BatchSize
		// An entry whose origin fails is never indexed; those before it are.
		forged := s.verifyOrigin(batch)
		if forged != nil {
			batch = batch[:forged.at]
		}
		offsets := make([]int64, len(batch))
		leaves := make([]merkle.Hash, len(batch))
		for i, e := range batch {
			entry := EntryFromLedger(e)
			offsets[i] = e.Offset
			leaves[i] = ComputeLeafHash(&entry)
		}
		if len(batch) > 0 {
			if err := s.cfg.Ledger.AppendLeaves(ctx, s.tree.Size(), offsets, leaves); err != nil {
				return err
			}
		}
		for _, l := range leaves {
			s.tree.Append(l)
		}
		if forged != nil {
			// The entries before it are sealed all the same.
			if _, err := s.checkpoint(ctx); err != nil {
				return errors.Join(forged.err, err)
			}
			return forged.err
		}
		if !full {
			return nil
		}
	}
}

// originFailure is the first entry of a batch whose origin fails.
type originFailure struct {
	at  int
	err error
}

// verifyOrigin returns the first entry of batch that VerifyOrigin fails,
// its error wrapping ErrIntegrity; nil when all pass.
func (s *Sealer) verifyOrigin(batch []domain.LedgerEntry) *originFailure {
	if s.cfg.VerifyOrigin == nil {
		return nil
	}
	for i, e := range batch {
		if err := s.cfg.VerifyOrigin(e); err != nil {
			if !errors.Is(err, ErrIntegrity) {
				err = fmt.Errorf("%w: %w; it is not sealed, and sealing stops before it", ErrIntegrity, err)
			}
			return &originFailure{at: i, err: err}
		}
	}
	return nil
}

// checkBehind fails, wrapping ErrIntegrity, when committed entries sort
// behind the last indexed entry without a ledger index: rows inserted with
// the ledger's ordering triggers disabled (a backdated transaction id),
// which no sealer or projection reading in order will ever see.
func (s *Sealer) checkBehind(ctx context.Context) error {
	const named = 10
	n, offsets, err := s.cfg.Ledger.UnindexedBehind(ctx, named)
	if err != nil || n == 0 {
		return err
	}
	list := fmt.Sprint(offsets)
	if n > int64(len(offsets)) {
		list = fmt.Sprintf("%v and %d more", offsets, n-int64(len(offsets)))
	}
	// What was indexed before the check is sealed all the same.
	if _, cerr := s.checkpoint(ctx); cerr != nil {
		return cerr
	}
	return fmt.Errorf("%w: %d ledger row(s) sort behind the last sealed entry but have no ledger index, at offset(s) %s: they were inserted out of order (with the ledger's triggers disabled) and can never be sealed or projected", ErrIntegrity, n, list)
}

// checkpoint signs and stores a checkpoint if the tree grew since the last.
func (s *Sealer) checkpoint(ctx context.Context) (Checkpoint, error) {
	size := s.tree.Size()
	if size == 0 || size == s.checkpointed {
		return Checkpoint{}, nil
	}
	cp := SignCheckpoint(s.cfg.Key, size, s.tree.Root(), s.cfg.Now())
	if err := s.cfg.Ledger.AppendCheckpoint(ctx, cp); err != nil {
		return Checkpoint{}, err
	}
	s.checkpointed = size
	s.cfg.Logger.Info("checkpoint_signed", slog.Uint64("tree_size", size), slog.String("root_hash", cp.RootHash.String()), slog.String("key_id", cp.KeyID))
	return cp, nil
}

// SealOnce indexes every committed entry and signs a
// checkpoint if the tree grew, once, without taking the leadership lock
// (the seal tables' constraints still refuse a second writer). It returns
// the latest checkpoint. Tests and one-off tools use it; webhookd serve
// runs a Sealer.
func SealOnce(ctx context.Context, cfg SealerConfig) (Checkpoint, error) {
	s := NewSealer(cfg)
	if err := s.restore(ctx); err != nil {
		return Checkpoint{}, err
	}
	err := s.catchUp(ctx)
	if err == nil {
		err = s.checkBehind(ctx)
	}
	// What was indexed before a failure is checkpointed all the same.
	if _, cerr := s.checkpoint(ctx); cerr != nil {
		return Checkpoint{}, errors.Join(err, cerr)
	}
	if err != nil {
		return Checkpoint{}, err
	}
	return cfg.Ledger.LatestCheckpoint(ctx)
}

// CheckpointReader reads the latest checkpoint; *eventstore.Store is one.
type CheckpointReader interface {
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
}

// CheckpointResponse is the JSON answer of GET /ledger/checkpoint.
type CheckpointResponse struct {
	// Checkpoint is the latest signed checkpoint, null before the first.
	Checkpoint *Checkpoint `json:"checkpoint"`
	// PublicKey is the key this webhookd signs with (base64 of 32 bytes).
	PublicKey ed25519.PublicKey `json:"public_key"`
	// PublicKeyPEM is the same key as a PEM PUBLIC KEY block.
	PublicKeyPEM string `json:"public_key_pem"`
	KeyID        string `json:"key_id"`
}

// CheckpointHandler serves GET /ledger/checkpoint: the latest checkpoint and
// the public key of this webhookd's signing key.
func CheckpointHandler(ledger CheckpointReader, pub ed25519.PublicKey, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := CheckpointResponse{PublicKey: pub, PublicKeyPEM: string(EncodePublicKeyPEM(pub)), KeyID: KeyID(pub)}
		cp, err := ledger.LatestCheckpoint(r.Context())
		switch {
		case err == nil:
			resp.Checkpoint = &cp
		case domain.ErrorCode(err) != domain.ENOTFOUND:
			logger.Error("checkpoint_read_failed", slog.String("error", SafeError(err)))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"unavailable","message":"cannot read the latest checkpoint"}` + "\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}
