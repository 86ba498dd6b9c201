package ingress

import (
	"context"
	"github.com/webhookd/webhookd/domain"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsNamespace prefixes every metric webhookd defines.
const MetricsNamespace = "webhookd"

// OtherEventType is the events_total label of a type Clerk does not
// document, so that a sender cannot create label values at will.
const OtherEventType = "other"

// ClerkEventTypes are the only values of the type label of
// webhookd_events_total besides OtherEventType.
var ClerkEventTypes = domain.ClerkEventTypes

var knownEventTypes = func() map[string]bool {
	m := make(map[string]bool, len(ClerkEventTypes))
	for _, t := range ClerkEventTypes {
		m[t] = true
	}
	return m
}()

// eventTypeLabel bounds the label's values to Clerk's documented types.
func eventTypeLabel(t string) string {
	if knownEventTypes[t] {
		return t
	}
	return OtherEventType
}

// DeliveryOutcomes are the outcome label values of
// webhookd_webhook_requests_total: the events of the audit log line.
var DeliveryOutcomes = []string{"event_appended", "event_duplicate", "signature_rejected", "event_invalid",
	"append_failed", "body_too_large", "rate_limited", "read_limited", "overloaded"}

// VerificationReasons are the reason label values of
// webhookd_verification_failures_total.
// body_unreadable is a body that did not arrive (whole) within the body
// read timeout: it could not be verified either.
var VerificationReasons = []string{"no_matching_signature", "timestamp_too_old", "timestamp_too_new", "missing_headers", "invalid_headers", "body_unreadable"}

// Metrics holds webhookd's Prometheus metrics on a registry of its own,
// so that several instances in one process (tests) do not collide.
type Metrics struct {
	registry *prometheus.Registry
	// rejections feeds RejectedPerHour.
	rejections rejectionHistory

	requests           *prometheus.CounterVec
	verifyFailures     *prometheus.CounterVec
	appendSeconds      *prometheus.HistogramVec
	batchEntries       prometheus.Histogram
	duplicates         prometheus.Counter
	conflicts          prometheus.Counter
	events             *prometheus.CounterVec
	inFlight           prometheus.Gauge
	bodyReads          prometheus.Gauge
	projectionApplied  *prometheus.CounterVec
	projectionFailures *prometheus.CounterVec
}

// NewMetrics returns metrics registered on a new registry, with the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "webhook_requests_total",
			Help: "Webhook deliveries by outcome (the event of their audit log line: event_appended, event_duplicate, signature_rejected, event_invalid, append_failed, body_too_large, rate_limited, read_limited, overloaded).",
		}, []string{"outcome"}),
		verifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "verification_failures_total",
			Help: "Deliveries that failed verification, by reason (no_matching_signature, timestamp_too_old, timestamp_too_new, missing_headers, invalid_headers, body_unreadable).",
		}, []string{"reason"}),
		appendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: MetricsNamespace, Name: "ledger_append_duration_seconds",
			Help:    "Time to append one delivery to the ledger, by result (appended, duplicate, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: MetricsNamespace, Name: "ledger_batch_entries",
			Help:    "Appends written by one ledger INSERT (group commit: concurrent deliveries share a transaction).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "ledger_duplicates_total",
			Help: "Verified deliveries whose svix-id was already in the ledger (Svix re-deliveries); nothing was appended.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "ledger_conflicts_total",
			Help: "Verified deliveries whose svix-id was already in the ledger with a different body (answered 200 duplicate; the body is kept in ledger_conflicts).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "events_total",
			Help: "Events appended to the ledger by Clerk event type; types Clerk does not document count as \"other\".",
		}, []string{"type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: MetricsNamespace, Name: "webhook_requests_in_flight",
			Help: "Verified webhook deliveries being parsed and appended now (bounded by --max-in-flight).",
		}),
		bodyReads: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: MetricsNamespace, Name: "webhook_body_reads_in_flight",
			Help: "Webhook request bodies being received now (bounded per source address by --max-body-reads-per-source).",
		}),
		projectionApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "projection_applied_total",
			Help: "Ledger entries applied by each projection (counted before the commit, so an entry re-applied after a failed commit counts again).",
		}, []string{"projection"}),
		projectionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: MetricsNamespace, Name: "projection_failures_total",
			Help: "Failures to apply a ledger entry, by projection and what followed (retry, unavailable, skipped).",
		}, []string{"projection", "outcome"}),
	}
	// Every known label value starts at zero, so that the first event of a
	// kind is an increase an alert can see (a series born at 1 has no
	// increase for rate() or increase()).
	for _, o := range DeliveryOutcomes {
		m.requests.WithLabelValues(o)
	}
	for _, r := range VerificationReasons {
		m.verifyFailures.WithLabelValues(r)
	}
	for _, r := range []string{"appended", "duplicate", "error"} {
		m.appendSeconds.WithLabelValues(r)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.verifyFailures, m.appendSeconds, m.batchEntries, m.duplicates, m.conflicts, m.events, m.inFlight, m.bodyReads,
		m.projectionApplied, m.projectionFailures,
	)
	return m
}

// Registry is where the metrics live; other components (Watermill's router
// metrics) register on it too.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// KnownProjections starts the projection counters of each name at zero,
// with every failure outcome (see NewMetrics for why).
func (m *Metrics) KnownProjections(names, failureOutcomes []string) {
	for _, p := range names {
		m.projectionApplied.WithLabelValues(p)
		for _, o := range failureOutcomes {
			m.projectionFailures.WithLabelValues(p, o)
		}
	}
}

// ProjectionApplied counts an applied entry; it fits
// projections.RunnerConfig.Applied after dropping the entry.
func (m *Metrics) ProjectionApplied(projection string) {
	m.projectionApplied.WithLabelValues(projection).Inc()
}

// ProjectionFailed counts a failed apply; outcome is one of the
// projections.Failure* values.
func (m *Metrics) ProjectionFailed(projection, outcome string) {
	m.projectionFailures.WithLabelValues(projection, outcome).Inc()
}

// delivered records one delivery's outcome at time at (the handler's
// clock). reason is set for verification failures.
func (m *Metrics) delivered(event, verifyReason, eventType string, at time.Time) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(event).Inc()
	if verifyReason != "" {
		m.verifyFailures.WithLabelValues(verifyReason).Inc()
	}
	switch event {
	case "event_appended":
		m.events.WithLabelValues(eventTypeLabel(eventType)).Inc()
	case "event_duplicate":
		m.duplicates.Inc()
	default:
		m.rejections.add(at)
	}
}

// LedgerConflict counts a duplicate whose body differs from the stored
// one.
func (m *Metrics) LedgerConflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

// LedgerBatch records one ledger INSERT of entries appends.
func (m *Metrics) LedgerBatch(entries int) {
	if m != nil {
		m.batchEntries.Observe(float64(entries))
	}
}

// appended records the duration of one ledger append.
func (m *Metrics) appended(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.appendSeconds.WithLabelValues(result).Observe(d.Seconds())
}

func (m *Metrics) bodyReadsAdd(n float64) {
	if m != nil {
		m.bodyReads.Add(n)
	}
}

func (m *Metrics) inFlightAdd(n float64) {
	if m != nil {
		m.inFlight.Add(n)
	}
}

// ProjectionLag is one projection's lag as the lag collector reports it.
type ProjectionLag struct {
	Projection string
	Events     int64
	Seconds    float64
}

// RegisterProjectionLag reports projection lag at scrape time:
// measure is called once per scrape with a context bounded by timeout.
// When it fails, webhookd_projection_lag_up is 0 and no lag is reported.
func (m *Metrics) RegisterProjectionLag(measure func(ctx context.Context) ([]ProjectionLag, error), timeout time.Duration) {
	m.registry.MustRegister(&scrapeCollector{
		up: lagUpDesc, descs: []*prometheus.Desc{lagEventsDesc, lagSecondsDesc}, timeout: timeout,
		measure: func(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string)) error {
			lags, err := measure(ctx)
			for _, l := range lags {
				gauge(lagEventsDesc, float64(l.Events), l.Projection)
				gauge(lagSecondsDesc, l.Seconds, l.Projection)
			}
			return err
		},
	})
}

var (
	lagEventsDesc = prometheus.NewDesc(MetricsNamespace+"_projection_lag_events",
		"Committed ledger entries a projection has not applied yet.", []string{"projection"}, nil)
	lagSecondsDesc = prometheus.NewDesc(MetricsNamespace+"_projection_lag_seconds",
		"Age of the oldest ledger entry a projection has not applied yet (0 when caught up).", []string{"projection"}, nil)
	lagUpDesc = prometheus.NewDesc(MetricsNamespace+"_projection_lag_up",
		"1 if projection lag could be measured at this scrape, 0 if the database did not answer in time.", nil, nil)
)

// scrapeCollector reports gauges that measure reads from the database
// at scrape time, bounded by timeout: up = 1 and what measure gave, or
// only up = 0 when it failed.
type scrapeCollector struct {
	up      *prometheus.Desc
	descs   []*prometheus.Desc
	timeout time.Duration
	measure func(ctx context.Context, gauge func(d *prometheus.Desc, v float64, labels ...string)) error
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var out []prometheus.Metric
	err := c.measure(ctx, func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	})
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, m := range out {
		ch <- m
	}
}

// SealLag is how far sealing is behind, as the seal collector reports it.
type SealLag struct {
	// TreeSize is the size of the latest signed checkpoint.
	TreeSize uint64
	// Seconds is the age of the oldest entry no checkpoint covers (0 when
	// every entry is covered).
	Seconds float64
}

// RegisterSealLag reports, at scrape time, the latest checkpoint's size and
// the age of the oldest ledger entry no checkpoint covers. When measure
// fails, webhookd_ledger_unsealed_up is 0 and nothing else is reported.
func (m *Metrics) RegisterSealLag(measure func(ctx context.Context) (SealLag, error), timeout time.Duration) {
	m.registry.MustRegister(&scrapeCollector{
		up: sealUpDesc, descs: []*prometheus.Desc{sealTreeSizeDesc, sealUnsealedDesc}, timeout: timeout,
		measure: func(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string)) error {
			lag, err := measure(ctx)
			gauge(sealTreeSizeDesc, float64(lag.TreeSize))
			gauge(sealUnsealedDesc, lag.Seconds)
			return err
		},
	})
}

var (
	sealTreeSizeDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_checkpoint_tree_size",
		"Ledger entries the latest signed checkpoint covers (0 before the first).", nil, nil)
	sealUnsealedDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_unsealed_seconds",
		"Age of the oldest committed ledger entry that no signed checkpoint covers yet (0 when all are covered).", nil, nil)
	sealUpDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_unsealed_up",
		"1 if the seal lag could be measured at this scrape, 0 if the database did not answer in time.", nil, nil)
)

// AppendLock is the state of the ledger's append lock as the lock
// collector reports it.
type AppendLock struct {
	// HeldSeconds is the age of the transaction holding it (0 when free).
	HeldSeconds float64
	// Waiting is how many transactions wait for it.
	Waiting int
}

// RegisterAppendLock reports, at scrape time, how long the transaction
// holding the ledger's append lock has been open and how many wait for
// it. When measure fails, webhookd_ledger_append_lock_up is 0 and nothing
// else is reported.
func (m *Metrics) RegisterAppendLock(measure func(ctx context.Context) (AppendLock, error), timeout time.Duration) {
	m.registry.MustRegister(&scrapeCollector{
		up: appendLockUpDesc, descs: []*prometheus.Desc{appendLockHeldDesc, appendLockWaitingDesc}, timeout: timeout,
		measure: func(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string)) error {
			l, err := measure(ctx)
			gauge(appendLockHeldDesc, l.HeldSeconds)
			gauge(appendLockWaitingDesc, float64(l.Waiting))
			return err
		},
	})
}

var (
	appendLockHeldDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_append_lock_held_seconds",
		"Age of the transaction holding the ledger's append lock (0 when free). Appends hold it for one INSERT and its commit; while a transaction holds it, every other append and every ledger reader waits for it.", nil, nil)
	appendLockWaitingDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_append_lock_waiting",
		"Transactions waiting for the ledger's append lock.", nil, nil)
	appendLockUpDesc = prometheus.NewDesc(MetricsNamespace+"_ledger_append_lock_up",
		"1 if the ledger's append lock could be read at this scrape, 0 if the database did not answer in time.", nil, nil)
)

// PoolStats is a snapshot of the database connection pool, in terms that
// keep the driver out of this package.
type PoolStats struct {
	Acquired, Idle, Total, Max int32
	// AcquireCount is the number of successful acquisitions so far,
	// EmptyAcquireCount those that had to wait for a connection,
	// AcquireDuration their total time.
	AcquireCount, EmptyAcquireCount int64
	AcquireDuration                 time.Duration
}

// RegisterPoolStats reports the database pool's state at scrape time.
func (m *Metrics) RegisterPoolStats(stat func() PoolStats) {
	m.registry.MustRegister(&poolCollector{stat: stat})
}

func poolDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(MetricsNamespace+"_db_pool_"+name, help, nil, nil)
}

var (
	poolAcquired     = poolDesc("acquired_conns", "Database connections in use.")
	poolIdle         = poolDesc("idle_conns", "Idle database connections.")
	poolTotal        = poolDesc("total_conns", "Open database connections (acquired, idle and being opened).")
	poolMax          = poolDesc("max_conns", "The pool's connection limit.")
	poolAcquires     = poolDesc("acquires_total", "Successful connection acquisitions.")
	poolEmptyAcquire = poolDesc("empty_acquires_total", "Acquisitions that had to wait because no connection was idle.")
	poolAcquireWait  = poolDesc("acquire_duration_seconds_total", "Total time spent acquiring connections.")
)

type poolCollector struct{ stat func() PoolStats }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquired, poolIdle, poolTotal, poolMax, poolAcquires, poolEmptyAcquire, poolAcquireWait} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	ch <- prometheus.MustNewConstMetric(poolAcquired, prometheus.GaugeValue, float64(s.Acquired))
	ch <- prometheus.MustNewConstMetric(poolIdle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.Total))
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.Max))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount))
	ch <- prometheus.MustNewConstMetric(poolEmptyAcquire, prometheus.CounterValue, float64(s.EmptyAcquireCount))
	ch <- prometheus.MustNewConstMetric(poolAcquireWait, prometheus.CounterValue, s.AcquireDuration.Seconds())
}

// isVerificationReason reports whether a rejection reason means the
// request could not be verified (as opposed to a verified but unusable
// delivery).
func isVerificationReason(reason string) bool {
	switch reason {
	case "missing_headers", "invalid_headers", "body_unreadable":
		return true
	}
	return strings.HasPrefix(reason, "timestamp_too_") || reason == "no_matching_signature"
}

// ForwardLag is the NATS forwarder's lag as the forwarder collector
// reports it.
type ForwardLag struct {
	// Events is the number of ledger entries not yet forwarded.
	Events int64
	// Seconds is the age of the oldest of them (0 when caught up).
	Seconds float64
	// Connected is whether the NATS connection is up.
	Connected bool
}

// RegisterForwardLag reports, at scrape time, the forwarder's lag behind
// the ledger and its connection to NATS, labelled with the stream. When
// measure fails, webhookd_forward_lag_up is 0 and nothing else is
// reported.
func (m *Metrics) RegisterForwardLag(stream string, measure func(ctx context.Context) (ForwardLag, error), timeout time.Duration) {
	m.registry.MustRegister(&scrapeCollector{
		up: forwardUpDesc, descs: []*prometheus.Desc{forwardEventsDesc, forwardSecondsDesc, forwardConnectedDesc}, timeout: timeout,
		measure: func(ctx context.Context, gauge func(*prometheus.Desc, float64, ...string)) error {
			lag, err := measure(ctx)
			gauge(forwardEventsDesc, float64(lag.Events), stream)
			gauge(forwardSecondsDesc, lag.Seconds, stream)
			connected := 0.0
			if lag.Connected {
				connected = 1
			}
			gauge(forwardConnectedDesc, connected, stream)
			return err
		},
	})
}

var (
	forwardEventsDesc = prometheus.NewDesc(MetricsNamespace+"_forward_lag_events",
		"Committed ledger entries the NATS forwarder has not published (or passed over by its type filter) yet.", []string{"stream"}, nil)
	forwardSecondsDesc = prometheus.NewDesc(MetricsNamespace+"_forward_lag_seconds",
		"Age of the oldest committed ledger entry the NATS forwarder has not published yet (0 when caught up).", []string{"stream"}, nil)
	forwardConnectedDesc = prometheus.NewDesc(MetricsNamespace+"_forward_connected",
		"1 if this process's connection to NATS is up.", []string{"stream"}, nil)
	forwardUpDesc = prometheus.NewDesc(MetricsNamespace+"_forward_lag_up",
		"1 if the forwarder's lag could be measured at this scrape, 0 if the database did not answer in time.", nil, nil)
)
