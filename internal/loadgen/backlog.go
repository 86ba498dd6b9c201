package loadgen

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookd/webhookd/internal/clerkfake"
)

// A backlog run replays what Svix does when webhookd (or its database)
// comes back after an outage: every message it could not deliver is
// pending at once and goes out at its full concurrency, each retried
// until it is answered 2xx. Then deliveries return to a trickle, whose
// projection lag shows whether the read models are current again.

// Backlog is what a backlog run measured (Report.Backlog).
type Backlog struct {
	// Events is the backlog's size; Concurrency the requests in flight.
	Events      int `json:"events"`
	Concurrency int `json:"concurrency"`
	// DrainSeconds runs from the first request to the last 2xx;
	// EventsPerSec is Events over it, Ratio that over the ceiling's
	// inserts/s at the same concurrency in the same run.
	DrainSeconds float64 `json:"drain_seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	Ratio        float64 `json:"ratio_to_ceiling"`
	// Latency is per request (every attempt); Delivery per event, from its
	// first attempt to its 2xx (retries and backoff included).
	Latency  Latency `json:"latency"`
	Delivery Latency `json:"delivery"`
	// Attempts counts requests, Retries those after a non-2xx answer or
	// a connection error; Statuses counts the non-2xx answers.
	Attempts int            `json:"attempts"`
	Retries  int            `json:"retries"`
	Statuses map[string]int `json:"non_2xx_statuses"`
	// LagDuring is the projection lag (2xx → visible in users) of the
	// backlog's events.
	LagDuring Latency `json:"projection_lag_during"`
	// CaughtUpMs is the time from the backlog's last 2xx until the users
	// projection had applied every backlog event (negative: before the
	// last 2xx reached the sender).
	CaughtUpMs float64 `json:"caught_up_after_last_delivery_ms"`
	// After the backlog, TrickleEvents are sent one every TrickleEveryMs,
	// as deliveries return to normal; LagAfter is their projection lag.
	TrickleEvents  int     `json:"trickle_events"`
	TrickleEveryMs float64 `json:"trickle_every_ms"`
	LagAfter       Latency `json:"projection_lag_after"`
}

// Trickle after a backlog: one event every trickleEvery for trickleFor,
// long enough to see the lag settle (the target: back under 100 ms within
// 2 s of the last delivery).
const (
	trickleEvery = 10 * time.Millisecond
	trickleFor   = 3 * time.Second
)

// trickleEvents is how many events a backlog run adds after the backlog.
func trickleEvents() int { return int(trickleFor / trickleEvery) }

// backlogSender sends pre-serialized requests as Svix sends a backlog.
type backlogSender struct {
	addr     string
	secret   string
	target   string
	events   []Event
	requests [][]byte
	w        *positionWatcher

	attempts, retries atomic.Int64
	mu                sync.Mutex
	statuses          map[int]int
	connErrs          int
}

// retryBackoff is the wait before the first retry of a non-2xx answer,
// doubled at each further retry up to maxRetryBackoff: Svix's schedule
// (5 s, 5 min, 30 min, …) scaled down so a run ends in seconds.
const (
	retryBackoff    = 50 * time.Millisecond
	maxRetryBackoff = time.Second
)

// send delivers events [from, to) with concurrency workers, each until it
// is answered 2xx (or ctx ends), and returns the per-request latencies,
// the per-event delivery times and the time of the last 2xx.
func (s *backlogSender) send(ctx context.Context, from, to, concurrency int) (requests, deliveries []time.Duration, last time.Time) {
	var next atomic.Int64
	next.Store(int64(from))
	var mu sync.Mutex
	deliveries = make([]time.Duration, to-from)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := &wireConn{addr: s.addr}
			defer conn.close()
			var mine []time.Duration
			var lastMine time.Time
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					break
				}
				first := time.Now()
				req := s.requests[i]
				backoff := retryBackoff
				for attempt := 0; ctx.Err() == nil; attempt++ {
					t0 := time.Now()
					status, err := conn.do(ctx, req)
					t1 := time.Now()
					s.attempts.Add(1)
					mine = append(mine, t1.Sub(t0))
					if err == nil && status >= 200 && status <= 299 {
						s.w.accepted(i, t1)
						deliveries[i-from] = t1.Sub(first)
						lastMine = t1
						break
					}
					s.retried(status, err)
					select {
					case <-ctx.Done():
					case <-time.After(backoff):
					}
					backoff = min(2*backoff, maxRetryBackoff)
					// Svix signs every attempt afresh: a retry long after
					// the first would otherwise fall out of the
					// receiver's 5-minute tolerance.
					if r, err := s.resign(i); err == nil {
						req = r
					}
				}
			}
			mu.Lock()
			requests = append(requests, mine...)
			if lastMine.After(last) {
				last = lastMine
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return requests, deliveries, last
}

func (s *backlogSender) retried(status int, err error) {
	s.retries.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.connErrs++
		return
	}
	s.statuses[status]++
}

// resign serializes event i again, signed now.
func (s *backlogSender) resign(i int) ([]byte, error) {
	e := s.events[i]
	h, err := clerkfake.Sign(s.secret, e.MsgID, time.Now(), e.Body)
	if err != nil {
		return nil, err
	}
	e.Header = h
	out, err := wireRequests(s.target, []Event{e})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// trickle sends events [from, to) one at a time, one every interval
// (Svix's deliveries once the backlog is gone), each until answered 2xx.
func (s *backlogSender) trickle(ctx context.Context, from, to int, interval time.Duration) {
	conn := &wireConn{addr: s.addr}
	defer conn.close()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := from; i < to && ctx.Err() == nil; i++ {
		for ctx.Err() == nil {
			s.attempts.Add(1)
			status, err := conn.do(ctx, s.requests[i])
			if err == nil && status >= 200 && status <= 299 {
				s.w.accepted(i, time.Now())
				break
			}
			s.retried(status, err)
			if r, err := s.resign(i); err == nil {
				s.requests[i] = r
			}
			time.Sleep(retryBackoff)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

func (s *backlogSender) nonOK() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for st, n := range s.statuses {
		out[strconv.Itoa(st)] = n
	}
	if s.connErrs > 0 {
		out["connection_error"] = s.connErrs
	}
	return out
}

// backlogLags splits the lags of a backlog run: those of the backlog's
// events [0, backlog) and those of the trickle after it, and returns when
// the projection first reached every backlog event's position.
func backlogLags(timeline []observation, acceptedAt []time.Time, ledger map[int]position, backlog int) (during, after []time.Duration, caughtUp time.Time, ok bool) {
	during, _ = projectionLags(timeline, acceptedAt[:backlog], ledger)
	afterAccepted := slices.Clone(acceptedAt)
	clear(afterAccepted[:backlog])
	after, _ = projectionLags(timeline, afterAccepted, ledger)
	var last position
	for i := 0; i < backlog; i++ {
		if p, found := ledger[i]; found && p.compare(last) > 0 {
			last = p
		}
	}
	caughtUp, ok = firstSeen(timeline, last)
	return during, after, caughtUp, ok
}
