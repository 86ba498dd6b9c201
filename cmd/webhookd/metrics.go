package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/webhookd/webhookd/domain"
	"github.com/webhookd/webhookd/ingress"
	"github.com/webhookd/webhookd/projections"
)

// lagScrapeTimeout bounds the projection lag query of one /metrics scrape,
// so that a slow database cannot hold scrapes open.
const lagScrapeTimeout = 2 * time.Second

// newMetrics builds the App's metrics: ingress's own, projection lag, the
// ledger's append lock and (when this webhookd seals) seal lag measured at
// scrape time, and the database pool's state.
func (a *App) newMetrics() *ingress.Metrics {
	m := ingress.NewMetrics()
	m.KnownProjections(projections.Names(), projections.FailureOutcomes)
	m.RegisterProjectionLag(func(ctx context.Context) ([]ingress.ProjectionLag, error) {
		var out []ingress.ProjectionLag
		for _, p := range projections.All() {
			lag, err := projections.MeasureLag(ctx, a.pool, p.Name(), a.cfg.Now())
			if err != nil {
				return nil, err
			}
			out = append(out, ingress.ProjectionLag{Projection: lag.Projection, Events: lag.Events, Seconds: lag.Seconds})
		}
		return out, nil
	}, lagScrapeTimeout)
	m.RegisterAppendLock(func(ctx context.Context) (ingress.AppendLock, error) {
		l, err := a.store.AppendLockState(ctx)
		out := ingress.AppendLock{Waiting: l.Waiting}
		if l.Holder != nil {
			out.HeldSeconds = l.Holder.Age.Seconds()
		}
		return out, err
	}, lagScrapeTimeout)
	if a.cfg.Seal.SigningKey != "" {
		m.RegisterSealLag(func(ctx context.Context) (ingress.SealLag, error) {
			lag, err := a.store.SealLag(ctx)
			if err != nil {
				return ingress.SealLag{}, err
			}
			out := ingress.SealLag{TreeSize: lag.TreeSize}
			if lag.OldestUncovered != nil {
				out.Seconds = max(0, a.cfg.Now().Sub(*lag.OldestUncovered).Seconds())
			}
			return out, nil
		}, lagScrapeTimeout)
	}
	m.RegisterPoolStats(func() ingress.PoolStats {
		s := a.pool.Stat()
		return ingress.PoolStats{
			Acquired:          s.AcquiredConns(),
			Idle:              s.IdleConns(),
			Total:             s.TotalConns(),
			Max:               s.MaxConns(),
			AcquireCount:      s.AcquireCount(),
			EmptyAcquireCount: s.EmptyAcquireCount(),
			AcquireDuration:   s.AcquireDuration(),
		}
	})
	return m
}

// projectionHooks wires the projection runner to m: applied and failed
// entries, and the time of each batch transaction by projection and
// outcome (webhookd_projection_batch_duration_seconds).
func projectionHooks(m *ingress.Metrics, cfg projections.RunnerConfig) projections.RunnerConfig {
	cfg.Applied = func(projection string, _ domain.LedgerEntry) { m.ProjectionApplied(projection) }
	cfg.Failed = func(projection string, _ domain.LedgerEntry, outcome string) { m.ProjectionFailed(projection, outcome) }
	batches := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ingress.MetricsNamespace,
		Name:      "projection_batch_duration_seconds",
		Help:      "Time of one projection batch transaction (read, apply, store the position, commit), by projection and outcome (committed, rolled_back).",
		Buckets:   prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"projection", "outcome"})
	m.Registry().MustRegister(batches)
	for _, p := range cfg.Projections {
		for _, outcome := range []string{"committed", "rolled_back"} {
			batches.WithLabelValues(p.Name(), outcome)
		}
	}
	cfg.Batch = func(projection string, _ int, took time.Duration, committed bool) {
		outcome := "committed"
		if !committed {
			outcome = "rolled_back"
		}
		batches.WithLabelValues(projection, outcome).Observe(took.Seconds())
	}
	return cfg
}

// checkLimits refuses negative abuse limits, naming the setting; zero
// means the default.
func checkLimits(cfg AppConfig) error {
	switch {
	case cfg.FailedAuthRate < 0:
		return fmt.Errorf("WEBHOOKD_FAILED_AUTH_RATE: must be a positive number of requests per second, got %v", cfg.FailedAuthRate)
	case cfg.FailedAuthBurst < 0:
		return fmt.Errorf("WEBHOOKD_FAILED_AUTH_BURST: must be a positive number of requests, got %d", cfg.FailedAuthBurst)
	case cfg.MaxInFlight < 0:
		return fmt.Errorf("WEBHOOKD_MAX_IN_FLIGHT: must be a positive number of requests, got %d", cfg.MaxInFlight)
	case cfg.MaxBodyReads < 0:
		return fmt.Errorf("WEBHOOKD_MAX_BODY_READS_PER_SOURCE: must be a positive number of requests, got %d", cfg.MaxBodyReads)
	case cfg.RejectLogEvery < 0:
		return fmt.Errorf("WEBHOOKD_REJECT_LOG_INTERVAL: must be a positive duration, or 0 to log every rejected request, got %s", cfg.RejectLogEvery)
	case cfg.BodyReadTimeout < 0 || cfg.BodyReadTimeout > readTimeout:
		return fmt.Errorf("WEBHOOKD_BODY_READ_TIMEOUT: must be positive and at most the server's read timeout (%s), got %s", readTimeout, cfg.BodyReadTimeout)
	}
	return nil
}
