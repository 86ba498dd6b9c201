// Package forward hands the ledger on to NATS JetStream: every ledger
// entry, in ledger order, is published once to a stream, on subject
// clerk.<event type> (Subject), with its body byte for byte as received
// and its facts in headers. Other services then consume Clerk's events
// without a Clerk endpoint, a Svix secret or a deduplication of their own.
//
// The contract: an entry is published after every entry before it in the
// ledger's safe order (eventstore.AfterPosition), never skipped, and
// stored in the stream once. The forwarder's position is a consumer group
// in ledger_offsets, as a projection's, moved only after JetStream
// acknowledged every message up to it; a message published again after a
// crash between the acknowledgement and the position's commit carries the
// same Nats-Msg-Id (the svix-id), which JetStream's duplicate window
// drops. One forwarder publishes at a time across replicas (a leader
// lock). A broker that is down makes it wait and retry; it never stops
// webhookd taking deliveries.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/webhookd/webhookd/audit/redact"
	"github.com/webhookd/webhookd/eventstore"
)

// Headers of every forwarded message, besides nats.MsgIdHdr
// (Nats-Msg-Id), which holds the svix-id as well.
const (
	HeaderSvixID     = "Svix-Id"
	HeaderOffset     = "Webhookd-Ledger-Offset"
	HeaderEventType  = "Webhookd-Event-Type"
	HeaderSource     = "Webhookd-Source"
	HeaderReceivedAt = "Webhookd-Received-At" // RFC 3339, nanoseconds, UTC
	// HeaderEventTypeQuoted is "true" when HeaderEventType holds the type
	// Go-quoted (strconv.QuoteToASCII): a type with a control character or
	// leading or trailing white space, which a header cannot carry (none
	// Clerk sends).
	HeaderEventTypeQuoted = "Webhookd-Event-Type-Quoted"
)

// typeHeader sets the event type headers of h.
func typeHeader(h nats.Header, eventType string) {
	if strings.IndexFunc(eventType, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 &&
		strings.TrimSpace(eventType) == eventType {
		h[HeaderEventType] = []string{eventType}
		return
	}
	h[HeaderEventType] = []string{strconv.QuoteToASCII(eventType)}
	h[HeaderEventTypeQuoted] = []string{"true"}
}

// DefaultStream is WEBHOOKD_FORWARD_STREAM's default.
const DefaultStream = "CLERK"

// DefaultDuplicateWindow is the duplicate window of a stream the forwarder
// creates: how long JetStream remembers a Nats-Msg-Id.
const DefaultDuplicateWindow = 10 * time.Minute

// LeaderLock is leadership among the forwarders of all replicas
// (eventstore.LeaderLock).
type LeaderLock interface {
	TryAcquire(ctx context.Context) (bool, error)
	Check(ctx context.Context) error
	Close(ctx context.Context) error
}

// Config configures a Forwarder.
type Config struct {
	// URL is WEBHOOKD_FORWARD_NATS_URL: one or more NATS server URLs,
	// comma-separated (nats://host:4222). Required.
	URL string
	// Stream is the JetStream stream. Defaults to DefaultStream.
	Stream string
	// SubjectPrefix is the subjects' first token(s). Defaults to
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Types selects the event types forwarded. Defaults to all.
	Types TypeFilter
	// DuplicateWindow is the duplicate window of a stream the forwarder
	// creates (an existing stream keeps its own). Defaults to
	// DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// Pool reads the ledger and keeps the position. Required.
	Pool *pgxpool.Pool
	// NewLock opens the leader lock. Required.
	NewLock func(ctx context.Context) (LeaderLock, error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PollInterval is how long a caught-up forwarder waits before looking
	// for new entries, and a follower before trying the lock again (times
	// 40). Defaults to 10ms.
	PollInterval time.Duration
	// BatchSize is how many entries are read, published and acknowledged
	// before the position moves. Defaults to 1000.
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait before a failed batch is
	// published again (doubling, with jitter). Default to 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgement of a
	// message. Defaults to 10s.
	AckTimeout time.Duration
	// Published, when set, is called after each batch whose position
	// committed: entries read, messages published, of those how many
	// JetStream reported as duplicates, and how long the batch took.
	Published func(entries, published, duplicates int, took time.Duration)
	// Failed, when set, is called each time a batch failed (it is
	// retried), with the reason: ReasonBroker or ReasonDatabase.
	Failed func(reason string)
}

// Reasons passed to Config.Failed.
const (
	ReasonBroker   = "broker"
	ReasonDatabase = "database"
)

// FailureReasons lists every reason passed to Config.Failed.
var FailureReasons = []string{ReasonBroker, ReasonDatabase}

var streamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// CheckStream refuses a stream name JetStream would refuse.
func CheckStream(name string) error {
	if !streamName.MatchString(name) {
		return errors.New("must be 1 to 255 letters, digits, '_' or '-'")
	}
	return nil
}

// CheckURL refuses a WEBHOOKD_FORWARD_NATS_URL that names no server. The
// error never repeats the URL (it may hold a password).
func CheckURL(s string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil {
			return errors.New("not a URL (nats://host:4222, several separated by commas)")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("scheme %q: must be nats, tls, ws or wss", u.Scheme)
		}
		if u.Hostname() == "" {
			return errors.New("no host (nats://host:4222)")
		}
	}
	return nil
}

// ConsumerGroup is the ledger_offsets row of the forwarder into stream:
// another stream starts from the ledger's first entry.
func ConsumerGroup(stream string) string { return "forward.nats." + stream }

// Forwarder publishes the ledger to a JetStream stream.
type Forwarder struct {
	cfg   Config
	group string
	nc    *nats.Conn
	js    jetstream.JetStream
}

// New checks cfg and connects to NATS in the background: a server that is
// down is waited for by Run, not refused here.
func New(cfg Config) (*Forwarder, error) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if err := CheckStream(cfg.Stream); err != nil {
		return nil, fmt.Errorf("WEBHOOKD_FORWARD_STREAM: %w", err)
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = DefaultSubjectPrefix
	}
	if err := CheckSubjectPrefix(cfg.SubjectPrefix); err != nil || len(cfg.SubjectPrefix) > 400 {
		if err == nil {
			err = errors.New("longer than 400 bytes")
		}
		return nil, fmt.Errorf("WEBHOOKD_FORWARD_SUBJECT_PREFIX: %w", err)
	}
	if err := CheckURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("WEBHOOKD_FORWARD_NATS_URL: %w", err)
	}
	if cfg.Pool == nil || cfg.NewLock == nil {
		return nil, errors.New("forwarder: no database pool or leader lock")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = DefaultDuplicateWindow
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, 5*time.Second)
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	log := cfg.Logger
	nc, err := nats.Connect(cfg.URL,
		nats.Name("webhookd forwarder"),
		// Down at start: keep trying in the background.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of going out after the reconnect, ahead of the entries
		// whose acknowledgements were lost with the connection (their
		// retry would then land after it, out of ledger order).
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("forwarder_disconnected", slog.String("cause", redact.SafeError(err)))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("forwarder_reconnected", slog.String("server", c.ConnectedAddr()))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_FORWARD_NATS_URL: %s", redact.SafeError(err))
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*cfg.BatchSize),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	return &Forwarder{cfg: cfg, group: ConsumerGroup(cfg.Stream), nc: nc, js: js}, nil
}

// Stream is the stream's name.
func (f *Forwarder) Stream() string { return f.cfg.Stream }

// Group is the forwarder's consumer group (its ledger_offsets row).
func (f *Forwarder) Group() string { return f.group }

// Connected reports whether the NATS connection is up.
func (f *Forwarder) Connected() bool { return f.nc.IsConnected() }

// Close closes the NATS connection.
func (f *Forwarder) Close() { f.nc.Close() }

// StreamConfig is the configuration of a stream the forwarder creates
// (README, Forwarding to NATS): every subject under the prefix, kept on disk,
// nothing expired or discarded by the stream itself, messages neither
// deleted nor purged through the API, duplicates remembered for
// DuplicateWindow.
func (f *Forwarder) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        f.cfg.Stream,
		Description: "Clerk events verified and recorded by webhookd, in ledger order",
		Subjects:    []string{f.cfg.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		Duplicates:  f.cfg.DuplicateWindow,
		Replicas:    1,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// ensureStream creates the stream unless it exists; an existing stream
// keeps its configuration (an operator may have made it with more
// replicas or limits).
func (f *Forwarder) ensureStream(ctx context.Context) error {
	_, err := f.js.Stream(ctx, f.cfg.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err = f.js.CreateStream(ctx, f.StreamConfig())
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil // another replica (before this one led) made it
	}
	if err == nil {
		f.cfg.Logger.Info("forwarder_stream_created", slog.String("stream", f.cfg.Stream),
			slog.String("subjects", f.cfg.SubjectPrefix+".>"), slog.Duration("duplicate_window", f.cfg.DuplicateWindow))
	}
	return err
}

// Run forwards until ctx is done: it competes for leadership and, while
// leading, publishes the ledger after its position. Database and broker
// failures are logged and retried; Run returns nil when ctx is done.
func (f *Forwarder) Run(ctx context.Context) error {
	log := f.cfg.Logger
	backoff := f.cfg.MinBackoff
	for ctx.Err() == nil {
		lock, err := f.cfg.NewLock(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("forwarder_lock_unavailable", slog.String("cause", redact.SafeError(err)))
				f.failed(ReasonDatabase)
			}
			backoff = f.pause(ctx, backoff)
			continue
		}
		err = f.lead(ctx, lock)
		_ = lock.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			break
		}
		log.Warn("forwarder_lost_leadership", slog.String("cause", redact.SafeError(err)))
		backoff = f.pause(ctx, backoff)
	}
	return nil
}

// pause waits about d (±25%) and returns the next wait.
func (f *Forwarder) pause(ctx context.Context, d time.Duration) time.Duration {
	jittered := d - d/4 + rand.N(d/2+1)
	sleep(ctx, jittered)
	return min(2*d, f.cfg.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errPositionMoved ends a leadership whose position was moved by someone
// else (a forwarder that took the lock after this one's connection broke).
var errPositionMoved = errors.New("the forwarder's position was moved by another process")

// lead waits for the lock, then forwards batch after batch while it
// holds it. It returns when the lock or the position is lost (or ctx ends).
func (f *Forwarder) lead(ctx context.Context, lock LeaderLock) error {
	for {
		held, err := lock.TryAcquire(ctx)
		if err != nil {
			return err
		}
		if held {
			break
		}
		sleep(ctx, 40*f.cfg.PollInterval)
		if ctx.Err() != nil {
			return nil
		}
	}
	log := f.cfg.Logger
	pos, err := f.position(ctx)
	if err != nil {
		return err
	}
	log.Info("forwarder_leading", slog.String("stream", f.cfg.Stream), slog.Int64("ledger_offset", pos.Offset))
	backoff := f.cfg.MinBackoff
	streamReady := false
	var prefetched []eventstore.Scanned // the batch after pos, read ahead
	for ctx.Err() == nil {
		if err := lock.Check(ctx); err != nil {
			return err
		}
		if !streamReady {
			if err := f.ensureStream(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				f.failed(ReasonBroker)
				log.Warn("forwarder_broker_unavailable", slog.String("stream", f.cfg.Stream),
					slog.String("cause", redact.SafeError(err)), slog.Duration("retry_in", backoff))
				backoff = f.pause(ctx, backoff)
				continue
			}
			streamReady = true
		}
		start := time.Now()
		batch := prefetched
		prefetched = nil
		if batch == nil {
			var err error
			batch, err = eventstore.ScanAfter(ctx, f.cfg.Pool, pos, eventstore.Position{}, f.cfg.BatchSize)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				f.failed(ReasonDatabase)
				log.Warn("forwarder_retry", slog.String("cause", redact.SafeError(err)), slog.Duration("retry_in", backoff))
				backoff = f.pause(ctx, backoff)
				continue
			}
		}
		if len(batch) == 0 {
			sleep(ctx, f.cfg.PollInterval)
			continue
		}
		futures, covered, sendErr := f.send(batch)
		// Behind a backlog, the next batch is read while JetStream
		// acknowledges this one; it is dropped if this one fails.
		next := make(chan []eventstore.Scanned, 1)
		if sendErr == nil && len(batch) == f.cfg.BatchSize {
			go func() {
				b, err := eventstore.ScanAfter(ctx, f.cfg.Pool, batch[len(batch)-1].Position, eventstore.Position{}, f.cfg.BatchSize)
				if err != nil {
					b = nil
				}
				next <- b
			}()
		} else {
			next <- nil
		}
		published, dups, err := f.await(ctx, futures)
		ahead := <-next
		if err == nil && sendErr != nil {
			// An entry could not be sent (NATS refused it, or the
			// connection went): keep what was acknowledged before it, and
			// retry from it.
			if covered > 0 && f.commit(ctx, pos, batch[covered-1].Position) == nil {
				pos = batch[covered-1].Position
				if f.cfg.Published != nil {
					f.cfg.Published(covered, published, dups, time.Since(start))
				}
			}
			err = sendErr
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.failed(ReasonBroker)
			log.Warn("forwarder_broker_unavailable", slog.String("stream", f.cfg.Stream),
				slog.Int64("ledger_offset", batch[0].Offset), slog.String("cause", redact.SafeError(err)),
				slog.Duration("retry_in", backoff))
			// The stream may have been deleted: look again before the retry.
			streamReady = false
			backoff = f.pause(ctx, backoff)
			continue
		}
		last := batch[len(batch)-1].Position
		if err := f.commit(ctx, pos, last); err != nil {
			if errors.Is(err, errPositionMoved) || ctx.Err() != nil {
				return err
			}
			// Published but not recorded: the batch is published again
			// and JetStream drops it as duplicates.
			f.failed(ReasonDatabase)
			log.Warn("forwarder_retry", slog.String("cause", redact.SafeError(err)), slog.Duration("retry_in", backoff))
			backoff = f.pause(ctx, backoff)
			continue
		}
		pos = last
		prefetched = ahead
		backoff = f.cfg.MinBackoff
		if f.cfg.Published != nil {
			f.cfg.Published(len(batch), published, dups, time.Since(start))
		}
		if dups > 0 {
			log.Info("forwarder_duplicates_dropped", slog.String("stream", f.cfg.Stream), slog.Int("messages", dups),
				slog.Int64("first_offset", batch[0].Offset), slog.Int64("last_offset", batch[len(batch)-1].Offset))
		}
		if len(batch) < f.cfg.BatchSize {
			sleep(ctx, f.cfg.PollInterval)
		}
	}
	return nil
}

// position reads the forwarder's position (creating it at the ledger's
// start the first time).
func (f *Forwarder) position(ctx context.Context) (eventstore.Position, error) {
	var pos eventstore.Position
	err := pgx.BeginFunc(ctx, f.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		pos, err = eventstore.ConsumerPosition(ctx, tx, f.group)
		return err
	})
	return pos, err
}

// commit moves the position from from to to, unless someone else moved it.
func (f *Forwarder) commit(ctx context.Context, from, to eventstore.Position) error {
	return pgx.BeginFunc(ctx, f.cfg.Pool, func(tx pgx.Tx) error {
		now, err := eventstore.ConsumerPosition(ctx, tx, f.group)
		if err != nil {
			return err
		}
		if now != from {
			return errPositionMoved
		}
		return eventstore.SetConsumerPosition(ctx, tx, f.group, to)
	})
}

// send publishes the batch's entries that the filter selects, in order,
// pipelined (PublishMsgAsync), and returns their acknowledgement futures
// and how many of the batch's entries they cover: all, unless an entry
// could not be sent (then the entries before it, and the error).
func (f *Forwarder) send(batch []eventstore.Scanned) ([]jetstream.PubAckFuture, int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	for i, s := range batch {
		if !f.cfg.Types.Match(s.EventType) {
			continue
		}
		msg := &nats.Msg{
			Subject: Subject(f.cfg.SubjectPrefix, s.EventType),
			Data:    s.Payload,
			Header: nats.Header{
				jetstream.MsgIDHeader: {s.SvixID},
				HeaderSvixID:          {s.SvixID},
				HeaderOffset:          {strconv.FormatInt(s.Offset, 10)},
				HeaderSource:          {s.Source},
				HeaderReceivedAt:      {s.ReceivedAt.UTC().Format(time.RFC3339Nano)},
			},
		}
		typeHeader(msg.Header, s.EventType)
		fut, err := f.js.PublishMsgAsync(msg, jetstream.WithExpectStream(f.cfg.Stream))
		if err != nil {
			return futures, i, fmt.Errorf("publish ledger offset %d: %w", s.Offset, err)
		}
		futures = append(futures, fut)
	}
	return futures, len(batch), nil
}

// await waits for every acknowledgement of futures and returns how many
// messages were published and how many of those JetStream dropped as
// duplicates. It fails when a message was not acknowledged: the whole
// batch is then published again (what was stored comes back as
// duplicates), so the stream never holds an entry after one that is
// missing.
func (f *Forwarder) await(ctx context.Context, futures []jetstream.PubAckFuture) (int, int, error) {
	dups := 0
	var ackErr error
	for _, fut := range futures {
		select {
		case ack := <-fut.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-fut.Err():
			if ackErr == nil {
				ackErr = fmt.Errorf("publish to stream %s: %w", f.cfg.Stream, err)
			}
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	if ackErr != nil {
		return 0, 0, ackErr
	}
	return len(futures), dups, nil
}

func (f *Forwarder) failed(reason string) {
	if f.cfg.Failed != nil {
		f.cfg.Failed(reason)
	}
}

// Lag is how far the forwarder is behind the ledger.
type Lag struct {
	Stream string `json:"stream"`
	// Events is the number of committed ledger entries not yet forwarded
	// (or passed over by the type filter).
	Events int64 `json:"events"`
	// Seconds is the age of the oldest of them (0 when caught up).
	Seconds float64 `json:"seconds"`
	// Connected is whether this process's NATS connection is up.
	Connected bool `json:"connected"`
}

// MeasureLag reads the forwarder's lag.
func (f *Forwarder) MeasureLag(ctx context.Context, now time.Time) (Lag, error) {
	n, oldest, err := eventstore.GroupLag(ctx, f.cfg.Pool, f.group)
	if err != nil {
		return Lag{}, fmt.Errorf("measure forwarder lag: %w", err)
	}
	lag := Lag{Stream: f.cfg.Stream, Events: n, Connected: f.Connected()}
	if oldest != nil {
		lag.Seconds = max(0, now.Sub(*oldest).Seconds())
	}
	return lag, nil
}
