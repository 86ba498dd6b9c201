package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/webhookd/webhookd/forward"
	"github.com/webhookd/webhookd/ingress"
)

// ForwardConfig configures the NATS JetStream forwarder inside webhookd
// serve (package forward); off without a URL.
type ForwardConfig struct {
	// URL is WEBHOOKD_FORWARD_NATS_URL. Defaults to none: no forwarder.
	URL string
	// Stream is WEBHOOKD_FORWARD_STREAM. Defaults to forward.DefaultStream
	// (CLERK).
	Stream string
	// SubjectPrefix is WEBHOOKD_FORWARD_SUBJECT_PREFIX. Defaults to
	// forward.DefaultSubjectPrefix (clerk).
	SubjectPrefix string
	// Types is WEBHOOKD_FORWARD_TYPES: event type globs, separated by
	// spaces or commas. Defaults to every type.
	Types string
	// DuplicateWindow is WEBHOOKD_FORWARD_DUPLICATE_WINDOW, the duplicate
	// window of a stream the forwarder creates. Defaults to
	// forward.DefaultDuplicateWindow (10m).
	DuplicateWindow time.Duration
	// PollInterval is how often a caught-up forwarder looks for new
	// entries. Defaults to 10ms.
	PollInterval time.Duration
	// BatchSize is how many entries are published before the position
	// moves. Defaults to 1000.
	BatchSize int
	// MaxBackoff bounds the wait between retries while the broker is
	// down. Defaults to 5s.
	MaxBackoff time.Duration
}

// checkForward refuses malformed forwarder settings, naming the setting,
// before anything is started.
func checkForward(cfg ForwardConfig) error {
	if cfg.URL == "" {
		return nil
	}
	if err := forward.CheckURL(cfg.URL); err != nil {
		return fmt.Errorf("WEBHOOKD_FORWARD_NATS_URL: %w", err)
	}
	if cfg.Stream != "" {
		if err := forward.CheckStream(cfg.Stream); err != nil {
			return fmt.Errorf("WEBHOOKD_FORWARD_STREAM: %w", err)
		}
	}
	if cfg.SubjectPrefix != "" {
		if err := forward.CheckSubjectPrefix(cfg.SubjectPrefix); err != nil {
			return fmt.Errorf("WEBHOOKD_FORWARD_SUBJECT_PREFIX: %w", err)
		}
	}
	if _, err := forward.ParseTypeFilter(cfg.Types); err != nil {
		return fmt.Errorf("WEBHOOKD_FORWARD_TYPES: %w", err)
	}
	if cfg.DuplicateWindow < 0 {
		return fmt.Errorf("WEBHOOKD_FORWARD_DUPLICATE_WINDOW: must be a positive duration, got %s", cfg.DuplicateWindow)
	}
	return nil
}

// newForwarder builds the forwarder actor, its metrics and nothing else;
// it returns nil when no URL is configured. A NATS server that is down is
// not an error: the forwarder waits for it.
func (a *App) newForwarder(metrics *ingress.Metrics) (*forward.Forwarder, error) {
	cfg := a.cfg.Forward
	if cfg.URL == "" {
		return nil, nil
	}
	types, err := forward.ParseTypeFilter(cfg.Types)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_FORWARD_TYPES: %w", err)
	}
	reg := metrics.Registry()
	published := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ingress.MetricsNamespace, Name: "forward_published_total",
		Help: "Messages the NATS forwarder published and JetStream acknowledged, duplicates included.",
	})
	duplicates := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ingress.MetricsNamespace, Name: "forward_duplicates_total",
		Help: "Messages JetStream acknowledged as duplicates (Nats-Msg-Id seen in its duplicate window): a batch published again after a failure between its publication and the position's commit.",
	})
	entries := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ingress.MetricsNamespace, Name: "forward_entries_total",
		Help: "Ledger entries the NATS forwarder moved past (published, or passed over by WEBHOOKD_FORWARD_TYPES).",
	})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ingress.MetricsNamespace, Name: "forward_failures_total",
		Help: "Forwarder batches that failed and are retried, by reason (broker: NATS down or refusing; database).",
	}, []string{"reason"})
	for _, r := range forward.FailureReasons {
		failures.WithLabelValues(r)
	}
	reg.MustRegister(published, duplicates, entries, failures)

	f, err := forward.New(forward.Config{
		URL:             cfg.URL,
		Stream:          cfg.Stream,
		SubjectPrefix:   cfg.SubjectPrefix,
		Types:           types,
		DuplicateWindow: cfg.DuplicateWindow,
		Pool:            a.pool,
		NewLock: func(ctx context.Context) (forward.LeaderLock, error) {
			l, err := a.store.NewLeaderLock(ctx, "forwarder "+forward.ConsumerGroup(cfg.Stream))
			if err != nil {
				return nil, err
			}
			return l, nil
		},
		Logger:       a.cfg.Logger,
		PollInterval: cfg.PollInterval,
		BatchSize:    cfg.BatchSize,
		MaxBackoff:   cfg.MaxBackoff,
		Published: func(n, pub, dups int, _ time.Duration) {
			entries.Add(float64(n))
			published.Add(float64(pub))
			duplicates.Add(float64(dups))
		},
		Failed: func(reason string) { failures.WithLabelValues(reason).Inc() },
	})
	if err != nil {
		return nil, err
	}
	metrics.RegisterForwardLag(f.Stream(), func(ctx context.Context) (ingress.ForwardLag, error) {
		lag, err := f.MeasureLag(ctx, a.cfg.Now())
		return ingress.ForwardLag{Events: lag.Events, Seconds: lag.Seconds, Connected: lag.Connected}, err
	}, lagScrapeTimeout)
	return f, nil
}

// checkForwarder reports the forwarder's lag and connection. A forwarder
// further behind than MaxLag (NATS down, a stream refusing messages)
// degrades /readyz but does not fail it: taking deliveries must not stop
// because the broker did, and the forwarder catches up by itself.
func (a *App) checkForwarder(ctx context.Context) (any, error) {
	if a.forwarder == nil {
		return "disabled", nil
	}
	lag, err := a.forwarder.MeasureLag(ctx, a.cfg.Now())
	if err != nil {
		return nil, errors.New("cannot measure forwarder lag")
	}
	if lag.Seconds > a.cfg.MaxLag.Seconds() {
		return ForwarderBehind{Lag: lag, State: "behind", Message: fmt.Sprintf(
			"the NATS forwarder is %d events and %.0fs behind the ledger (limit %s; connected to NATS: %t); deliveries are still taken",
			lag.Events, lag.Seconds, a.cfg.MaxLag, lag.Connected)}, ingress.ErrDegraded
	}
	return lag, nil
}

// ForwarderBehind is the degraded state of the forwarder readiness check.
type ForwarderBehind struct {
	forward.Lag
	State   string `json:"state"` // "behind"
	Message string `json:"message"`
}

// startForwarder runs the forwarder (when configured) until ctx is done.
func (a *App) startForwarder(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.forwarder == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		defer a.forwarder.Close()
		_ = a.forwarder.Run(ctx)
	}()
	return done
}
