package seal

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/redact"
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
	// EachIndexedFrom calls fn with every indexed entry from ledger index
	// first on, with its index and stored leaf hash, in index order.
	EachIndexedFrom(ctx context.Context, first uint64, fn func(e domain.LedgerEntry, index uint64, leaf merkle.Hash) error) error
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
	// Origin names the log in checkpoint notes. Defaults to
	// DefaultOrigin(Key's public key).
	Origin string
	// StatePath, when set, is a local file where the sealer keeps the
	// last checkpoint it signed or saw (a signed note, written atomically,
	// mode 0600), so that a restarted sealer still knows it: a ledger
	// whose seal tables fall behind it is an integrity failure.
	StatePath string
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
	if c.Origin == "" && c.Key != nil {
		c.Origin = DefaultOrigin(c.Key.Public().(ed25519.PublicKey))
	}
}

// ErrIntegrity is matched by the errors a sealer returns when the seal
// tables disagree with what the sealer knows: the stored leaf hashes do
// not reproduce the last signed checkpoint, or ledger_index or
// ledger_checkpoints hold less than a checkpoint or index the sealer
// signed, saw or wrote (they vanished, shrank or were replaced). The
// sealer then refuses to seal, and never starts over.
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
	// known is the largest checkpoint this sealer signed or saw (signature
	// verified), kept across leaderships and, with StatePath, restarts:
	// the seal tables may never fall behind it.
	known *Checkpoint
	// indexedSize and indexedRoot are the tree this sealer last wrote or
	// checked in ledger_index; unlike tree they survive a failed restore.
	indexedSize uint64
	indexedRoot merkle.Hash
	// stateLoaded says StatePath was read.
	stateLoaded bool
	// failure holds the last integrity failure (nil while sound).
	failure atomic.Pointer[error]
}

// NewSealer returns a sealer; nothing runs until Run.
func NewSealer(cfg SealerConfig) *Sealer {
	cfg.defaults()
	return &Sealer{cfg: cfg}
}

// IntegrityFailure returns the integrity failure that stopped sealing, or
// nil while the seal tables agree with what the sealer knows.
func (s *Sealer) IntegrityFailure() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// Run competes for leadership and, while leading, seals, until ctx is done.
// It returns nil when ctx is done; it does not stop on database outages or
// integrity failures, which it logs and retries after Interval.
func (s *Sealer) Run(ctx context.Context) error {
	log := s.cfg.Logger
	for ctx.Err() == nil {
		lock, err := s.cfg.NewLock(ctx)
		if err != nil {
			log.Warn("sealer_lock_unavailable", slog.String("error", redact.SafeError(err)))
			sleep(ctx, s.cfg.PollInterval)
			continue
		}
		err = s.waitAndLead(ctx, lock)
		// On an integrity failure the sealer keeps the lock, so that no
		// other replica (which may know less) starts over on the damaged
		// tables, and checks again every Interval.
		for errors.Is(err, ErrIntegrity) && ctx.Err() == nil {
			s.failure.Store(&err)
			log.Error("sealer_integrity_failure", slog.String("error", err.Error()))
			sleep(ctx, s.cfg.Interval)
			if ctx.Err() == nil {
				err = s.waitAndLead(ctx, lock)
			}
		}
		_ = lock.Close(context.WithoutCancel(ctx))
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.Warn("sealer_lost_leadership", slog.String("error", redact.SafeError(err)))
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
		s.observe(ctx)
		sleep(ctx, s.cfg.PollInterval)
		if ctx.Err() != nil {
			return nil
		}
	}
	if s.IntegrityFailure() == nil {
		s.cfg.Logger.Info("sealer_leading")
	}
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
		if err == nil {
			// Cleared only once a whole round passed: after an integrity
			// failure the re-check's restore may pass while the entry at
			// fault is still there, and /readyz and the metric must not
			// flicker to healthy meanwhile.
			s.failure.Store(nil)
		}
		if err != nil && ctx.Err() == nil {
			// A write refused because the seal tables changed under the
			// sealer (rows gone: the next index is not the one it holds)
			// is an integrity failure, not lost leadership: find out
			// before letting go of the lock.
			if rerr := s.restore(ctx); errors.Is(rerr, ErrIntegrity) {
				return rerr
			}
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
// against the last checkpoint in the database, the largest checkpoint this
// sealer knows (signed, seen or from StatePath) and the tree it had
// indexed itself: the seal tables may grow, never shrink or change.
func (s *Sealer) restore(ctx context.Context) error {
	if err := s.loadState(); err != nil {
		return err
	}
	indexedSize, indexedRoot := s.indexedSize, s.indexedRoot
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
	known := s.known
	if known != nil && (!signed || cp.TreeSize < known.TreeSize) {
		latest := "none"
		if signed {
			latest = fmt.Sprintf("one of tree size %d", cp.TreeSize)
		}
		return fmt.Errorf("%w: this sealer knows a signed checkpoint of tree size %d (root %s) but ledger_checkpoints holds %s: checkpoints were removed", ErrIntegrity, known.TreeSize, known.RootHash, latest)
	}
	// What the stored leaves must reproduce.
	type expectation struct {
		size uint64
		root merkle.Hash
		what string
	}
	var expect []expectation
	if signed {
		expect = append(expect, expectation{cp.TreeSize, cp.RootHash, "the last checkpoint in ledger_checkpoints"})
	}
	if known != nil {
		expect = append(expect, expectation{known.TreeSize, known.RootHash, "the last checkpoint this sealer signed or saw"})
	}
	if indexedSize > 0 {
		expect = append(expect, expectation{indexedSize, indexedRoot, "the ledger_index this sealer wrote"})
	}
	got := map[uint64]merkle.Hash{}
	for _, e := range expect {
		got[e.size] = merkle.Hash{}
	}
	if err := s.cfg.Ledger.ForEachLeafHash(ctx, func(leaf merkle.Hash) error {
		s.tree.Append(leaf)
		if _, ok := got[s.tree.Size()]; ok {
			got[s.tree.Size()] = s.tree.Root()
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range expect {
		if s.tree.Size() < e.size {
			return fmt.Errorf("%w: ledger_index holds %d entries but %s covers %d: index rows were removed", ErrIntegrity, s.tree.Size(), e.what, e.size)
		}
		if got[e.size] != e.root {
			return fmt.Errorf("%w: the stored leaf hashes give root %s at tree size %d, %s says %s", ErrIntegrity, got[e.size], e.size, e.what, e.root)
		}
	}
	// Entries indexed after the last checkpoint may have been indexed by
	// another sealer (one that wrote first) or by hand: this sealer is
	// about to sign them, so it checks them as it checks what it indexes.
	var from uint64
	if signed {
		from = cp.TreeSize
	}
	if err := s.checkIndexedFrom(ctx, from); err != nil {
		return err
	}
	s.indexedSize, s.indexedRoot = s.tree.Size(), s.tree.Root()
	if signed {
		s.checkpointed = cp.TreeSize
		if err := s.remember(cp); err != nil {
			return err
		}
	}
	return nil
}

// checkIndexedFrom fails, wrapping ErrIntegrity, for the first entry
// indexed at first or later whose stored leaf hash is not its own or whose
// origin does not verify.
func (s *Sealer) checkIndexedFrom(ctx context.Context, first uint64) error {
	return s.cfg.Ledger.EachIndexedFrom(ctx, first, func(e domain.LedgerEntry, index uint64, leaf merkle.Hash) error {
		entry := EntryFromLedger(e)
		if got := ComputeLeafHash(&entry); got != leaf {
			return fmt.Errorf("%w: ledger index %d (offset %d, svix_id %s) was indexed after the last checkpoint with leaf hash %s, but the entry gives %s", ErrIntegrity, index, e.Offset, e.SvixID, leaf, got)
		}
		if f := s.verifyOrigin([]domain.LedgerEntry{e}); f != nil {
			return fmt.Errorf("ledger index %d, indexed after the last checkpoint: %w", index, f.err)
		}
		return nil
	})
}

// observe remembers the latest checkpoint while another replica leads, so
// that this sealer knows it when it takes over.
func (s *Sealer) observe(ctx context.Context) {
	if s.loadState() != nil {
		return
	}
	cp, err := s.cfg.Ledger.LatestCheckpoint(ctx)
	if err != nil || cp.VerifySignature() != nil {
		return
	}
	if s.known == nil || cp.TreeSize > s.known.TreeSize {
		_ = s.remember(cp)
	}
}

// remember makes cp the known checkpoint if it is larger, and writes it to
// StatePath.
func (s *Sealer) remember(cp Checkpoint) error {
	if s.known != nil && cp.TreeSize <= s.known.TreeSize {
		return nil
	}
	s.known = &cp
	if s.cfg.StatePath == "" || cp.Note == "" {
		return nil
	}
	if err := WriteFileAtomic(s.cfg.StatePath, []byte(cp.Note), 0o600); err != nil {
		return fmt.Errorf("WEBHOOKD_SEAL_STATE: %w", err)
	}
	return nil
}

// loadState reads StatePath once: the last checkpoint a sealer of this
// deployment signed or saw there.
func (s *Sealer) loadState() error {
	if s.stateLoaded || s.cfg.StatePath == "" {
		return nil
	}
	data, err := os.ReadFile(s.cfg.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		s.stateLoaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("WEBHOOKD_SEAL_STATE: %w", err)
	}
	pub := s.cfg.Key.Public().(ed25519.PublicKey)
	v, err := LogVerifier(s.cfg.Origin, pub)
	if err != nil {
		return err
	}
	c, _, err := ParseNoteCheckpoint(data, v)
	if err != nil {
		return fmt.Errorf("%w: WEBHOOKD_SEAL_STATE %s does not hold a checkpoint signed by this key under %q: %v", ErrIntegrity, s.cfg.StatePath, s.cfg.Origin, err)
	}
	s.stateLoaded = true
	if s.known == nil || c.Size > s.known.TreeSize {
		cp := Checkpoint{TreeSize: c.Size, Origin: s.cfg.Origin, Note: string(data), PublicKey: pub, KeyID: KeyID(pub)}
		copy(cp.RootHash[:], c.Hash)
		s.known = &cp
	}
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
		s.indexedSize, s.indexedRoot = s.tree.Size(), s.tree.Root()
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
	cp := SignCheckpointAs(LogKey{Key: s.cfg.Key, Origin: s.cfg.Origin}, size, s.tree.Root(), s.cfg.Now())
	if err := s.cfg.Ledger.AppendCheckpoint(ctx, cp); err != nil {
		return Checkpoint{}, err
	}
	s.checkpointed = size
	if err := s.remember(cp); err != nil {
		return Checkpoint{}, err
	}
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
