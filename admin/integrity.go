package admin

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookd/webhookd/audit/bundle"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/eventstore"
	"github.com/webhookd/webhookd/projections"
)

// Integrity serves the ledger's state at a glance (size, checkpoint, seal
// lag, the last verification and a button that runs one), the projections'
// lag and failures, exports and the deliveries chart.
type Integrity struct {
	Store *eventstore.Store
	// Retry re-drives projection_failures as `webhookd projections retry`
	// does (recording the retry in the ledger); nil hides the action.
	Retry func(ctx context.Context, projection string, offset int64, actor, reason string) ([]projections.RetryResult, error)
	// Rejected returns rejected deliveries per hour since a time
	// (ingress.Metrics.RejectedPerHour); nil draws none.
	Rejected func(since time.Time) map[time.Time]int
	// ScratchDir is where exports are written before they are sent.
	// Defaults to os.TempDir().
	ScratchDir string

	verifying sync.Mutex
	server    *Server
}

// Verification is the result of one ledger verification run from here.
type Verification struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	OK         bool      `json:"ok"`
	Entries    int64     `json:"entries"`
	TreeSize   int64     `json:"tree_size"`
	Problems   []string  `json:"problems"`
	Actor      string    `json:"actor"`
}

// Status is the ledger and projections at a glance.
type Status struct {
	LedgerEntries int64 `json:"ledger_entries"`
	// Checkpoint is the latest signed checkpoint (null: none yet).
	Checkpoint *CheckpointStatus `json:"checkpoint"`
	// SealLagSeconds is the age of the oldest entry no checkpoint covers
	// (0: all covered).
	SealLagSeconds   float64               `json:"seal_lag_seconds"`
	LastVerification *Verification         `json:"last_verification"`
	Projections      []projections.Lag     `json:"projections"`
	Failures         []projections.Failure `json:"projection_failures"`
	RetryAvailable   bool                  `json:"retry_available"`
}

// CheckpointStatus describes the latest checkpoint.
type CheckpointStatus struct {
	TreeSize   uint64    `json:"tree_size"`
	SignedAt   time.Time `json:"signed_at"`
	AgeSeconds float64   `json:"age_seconds"`
	KeyID      string    `json:"key_id"`
}

func (g *Integrity) status(ctx context.Context) (Status, error) {
	pool := g.server.cfg.Pool
	now := g.server.cfg.Now()
	var st Status
	var err error
	if st.LedgerEntries, err = g.Store.Count(ctx); err != nil {
		return Status{}, unavailable(err)
	}
	cp, err := g.Store.LatestCheckpoint(ctx)
	switch domain.ErrorCode(err) {
	case "":
		st.Checkpoint = &CheckpointStatus{TreeSize: cp.TreeSize, SignedAt: cp.SignedAt, AgeSeconds: now.Sub(cp.SignedAt).Seconds(), KeyID: cp.KeyID}
	case domain.ENOTFOUND:
	default:
		return Status{}, unavailable(err)
	}
	lag, err := g.Store.SealLag(ctx)
	if err != nil {
		return Status{}, unavailable(err)
	}
	if lag.OldestUncovered != nil {
		st.SealLagSeconds = max(0, now.Sub(*lag.OldestUncovered).Seconds())
	}
	var v Verification
	var problems []byte
	err = pool.QueryRow(ctx, `SELECT started_at, finished_at, ok, entries, tree_size, problems, actor FROM ledger_verifications ORDER BY id DESC LIMIT 1`).
		Scan(&v.StartedAt, &v.FinishedAt, &v.OK, &v.Entries, &v.TreeSize, &problems, &v.Actor)
	switch {
	case err == nil:
		_ = json.Unmarshal(problems, &v.Problems)
		st.LastVerification = &v
	case !errors.Is(err, pgx.ErrNoRows):
		return Status{}, unavailable(err)
	}
	for _, m := range projections.All() {
		l, err := projections.MeasureLag(ctx, pool, m.Name(), now)
		if err != nil {
			return Status{}, unavailable(err)
		}
		st.Projections = append(st.Projections, l)
	}
	if st.Failures, err = projections.Failures(ctx, pool, projections.FailureFilter{}); err != nil {
		return Status{}, unavailable(err)
	}
	if st.Failures == nil {
		st.Failures = []projections.Failure{}
	}
	st.RetryAvailable = g.Retry != nil
	return st, nil
}

var errVerifying = domain.Errorf(domain.ECONFLICT, "verification_running", "a verification is running already; wait for its result")

// verify re-checks the whole ledger (webhookd verify --db) against the key
// this webhookd seals with, and keeps the result. bundle.VerifyLedger reads
// the checkpoints before the rows, so a live ledger verifies.
func (g *Integrity) verify(ctx context.Context, actor string) (Verification, error) {
	key := g.server.cfg.Recorder.Key
	if key == nil {
		return Verification{}, domain.Errorf(domain.EINVALID, "ledger_not_sealed", "the ledger is not sealed (no WEBHOOKD_SIGNING_KEY), so there is nothing to verify against")
	}
	if !g.verifying.TryLock() {
		return Verification{}, errVerifying
	}
	defer g.verifying.Unlock()
	v := Verification{StartedAt: g.server.cfg.Now().UTC(), Actor: actor}
	r, err := bundle.VerifyLedger(ctx, g.Store, bundle.VerifyOptions{TrustedKeys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}})
	if err != nil {
		return Verification{}, unavailable(err)
	}
	v.FinishedAt = g.server.cfg.Now().UTC()
	v.OK, v.Entries, v.TreeSize, v.Problems = len(r.Problems) == 0, int64(r.Entries), int64(r.Checkpoint.TreeSize), r.Problems
	if v.Problems == nil {
		v.Problems = []string{}
	}
	problems, _ := json.Marshal(v.Problems)
	if _, err := g.server.cfg.Pool.Exec(ctx, `INSERT INTO ledger_verifications (started_at, finished_at, ok, entries, tree_size, problems, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		v.StartedAt, v.FinishedAt, v.OK, v.Entries, v.TreeSize, problems, v.Actor); err != nil {
		return Verification{}, unavailable(err)
	}
	return v, nil
}

// ExportRequest selects what an export holds, as webhookd export's flags.
type ExportRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
	User string `json:"user"`
}

func parseDay(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, domain.Errorf(domain.EINVALID, "invalid_"+name, "%s: want RFC 3339 (2026-11-27T10:00:00Z) or a date (2026-11-27)", name)
}

// export writes the bundle webhookd export writes (bundle.Export, recorded
// in the ledger with actor) as a .tar.gz and sends it.
func (g *Integrity) export(w http.ResponseWriter, r *http.Request, p Principal, via string, req ExportRequest) error {
	from, err := parseDay("from", req.From)
	if err != nil {
		return err
	}
	to, err := parseDay("to", req.To)
	if err != nil {
		return err
	}
	if req.User != "" {
		if err := validClerkID(req.User); err != nil {
			return err
		}
	}
	key := g.server.cfg.Recorder.Key
	if key == nil {
		return domain.Errorf(domain.EINVALID, "ledger_not_sealed", "exports need a sealed ledger: set WEBHOOKD_SIGNING_KEY")
	}
	if _, err := g.Store.LatestCheckpoint(r.Context()); err != nil {
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			return domain.Errorf(domain.ENOTFOUND, "no_checkpoint", "the ledger has no signed checkpoint yet; try again in a few seconds")
		}
		return unavailable(err)
	}
	// The export itself is a read of personal data (bundles hold bodies
	// in clear); bundle.Export also records the export.
	if err := g.server.access(r.Context(), p, via, domain.PersonalDataAccess{ClerkID: req.User, Action: "export", Fields: []string{"payload"},
		Reason: fmt.Sprintf("export from %q to %q", req.From, req.To)}); err != nil {
		return err
	}
	scratch := g.ScratchDir
	if scratch == "" {
		scratch = os.TempDir()
	}
	dir, err := os.MkdirTemp(scratch, "webhookd-export-")
	if err != nil {
		return fmt.Errorf("export scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "bundle.tar.gz")
	m, err := bundle.Export(r.Context(), g.Store, bundle.ExportOptions{From: from, To: to, User: req.User, Archive: archive,
		Actor: "token:" + p.Name, Record: g.Store, Key: key, Now: g.server.cfg.Now})
	if err != nil {
		if domain.ErrorCode(err) != domain.EINTERNAL {
			return err
		}
		return &domain.Error{Code: domain.EINTERNAL, Reason: "export_failed", Message: "the export failed; see the log line of this error id", Err: err}
	}
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open export: %w", err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="webhookd-export-%s.tar.gz"`, m.ExportID))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, f)
	g.server.cfg.Logger.Info("admin_export_sent", "export_id", m.ExportID, "entries", m.Entries, "token", p.Name)
	return nil
}

func (g *Integrity) apiRoutes(s *Server, api func(string, bool, func(http.ResponseWriter, *http.Request, Principal))) {
	g.server = s
	api("GET /api/integrity", false, func(w http.ResponseWriter, r *http.Request, p Principal) {
		st, err := g.status(r.Context())
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	api("POST /api/integrity/verify", true, func(w http.ResponseWriter, r *http.Request, p Principal) {
		v, err := g.verify(r.Context(), "token:"+p.Name)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	api("POST /api/projections/retry", true, func(w http.ResponseWriter, r *http.Request, p Principal) {
		var req struct {
			Projection string `json:"projection"`
			Offset     int64  `json:"offset"`
			Reason     string `json:"reason"`
		}
		if err := decode(r, &req); err != nil {
			s.apiError(w, r, err)
			return
		}
		results, err := g.retry(r.Context(), p, req.Projection, req.Offset, req.Reason)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"results": results})
	})
	api("POST /api/export", true, func(w http.ResponseWriter, r *http.Request, p Principal) {
		var req ExportRequest
		if err := decode(r, &req); err != nil {
			s.apiError(w, r, err)
			return
		}
		if err := g.export(w, r, p, "api", req); err != nil {
			s.apiError(w, r, err)
		}
	})
	api("GET /api/deliveries", false, func(w http.ResponseWriter, r *http.Request, p Principal) {
		d, err := g.deliveries(r.Context(), r.URL.Query().Get("days"))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
}

func (g *Integrity) retry(ctx context.Context, p Principal, projection string, offset int64, reason string) ([]projections.RetryResult, error) {
	if g.Retry == nil {
		return nil, domain.Errorf(domain.ENOTFOUND, "retry_unavailable", "retrying projection failures is not available here; use webhookd projections retry")
	}
	if projection != "" {
		if _, err := projections.ByName(projection); err != nil {
			return nil, domain.Errorf(domain.EINVALID, "invalid_projection", "no projection %q (there are %s)", projection, strings.Join(projections.Names(), ", "))
		}
	}
	if err := validReason(reason); err != nil {
		return nil, err
	}
	results, err := g.Retry(ctx, projection, offset, "token:"+p.Name, strings.TrimSpace(reason))
	if errors.Is(err, projections.ErrNoFailures) {
		return nil, domain.Errorf(domain.ENOTFOUND, "no_failures", "no projection failure matches")
	}
	if err != nil && domain.ErrorCode(err) == domain.EINTERNAL {
		return results, unavailable(err)
	}
	return results, err
}
