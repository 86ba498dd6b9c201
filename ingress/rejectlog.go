package ingress

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// DefaultRejectLogInterval is the default interval over which rejected
// requests are summarised (see Config.RejectLogInterval).
const DefaultRejectLogInterval = 10 * time.Second

// rejectLog keeps a flood of rejected requests from filling the disks:
// per interval, the first rejection of each (source, event, reason) is
// logged in full (with its error id) and the rest are only counted, then
// summarised in one rejections_suppressed line per key when the interval
// ends. Metrics still count every request. Memory is bounded: beyond
// maxKeys keys in one interval, new sources share one key (no address).
type rejectLog struct {
	logger   *slog.Logger
	interval time.Duration
	now      func() time.Time
	maxKeys  int

	mu     sync.Mutex
	start  time.Time // of the current interval; zero when nothing is counted
	counts map[rejectKey]*rejectCount
}

type rejectKey struct {
	source        netip.Addr // limiterKey of the address; invalid for the overflow key
	event, reason string
}

type rejectCount struct {
	addr       string // the first address seen under the key, as logged
	status     int
	suppressed int
}

func newRejectLog(logger *slog.Logger, interval time.Duration, maxKeys int, now func() time.Time) *rejectLog {
	return &rejectLog{logger: logger, interval: interval, now: now, maxKeys: maxKeys, counts: map[rejectKey]*rejectCount{}}
}

// admit records one rejection and reports whether it is to be logged in
// full. When the interval has ended it first writes the summary of the
// interval. A non-positive interval logs every rejection in full.
func (l *rejectLog) admit(ctx context.Context, src netip.Addr, event, reason string, status int) bool {
	if l.interval <= 0 {
		return true
	}
	l.mu.Lock()
	now := l.now()
	var due map[rejectKey]*rejectCount
	var dueStart time.Time
	if !l.start.IsZero() && now.Sub(l.start) >= l.interval {
		due, dueStart = l.takeLocked()
	}
	if l.start.IsZero() {
		l.start = now
	}
	k := rejectKey{source: limiterKey(src), event: event, reason: reason}
	c, seen := l.counts[k]
	if !seen && len(l.counts) >= l.maxKeys {
		k.source = netip.Addr{}
		c, seen = l.counts[k]
	}
	if seen {
		c.suppressed++
	} else {
		addr := addrText(src)
		if !k.source.IsValid() {
			addr = "other"
		}
		l.counts[k] = &rejectCount{addr: addr, status: status}
	}
	l.mu.Unlock()
	l.emit(ctx, due, dueStart, now)
	return !seen
}

// flushDue writes the summary of the current interval if it has ended.
func (l *rejectLog) flushDue(ctx context.Context) {
	l.mu.Lock()
	now := l.now()
	if l.start.IsZero() || now.Sub(l.start) < l.interval {
		l.mu.Unlock()
		return
	}
	due, start := l.takeLocked()
	l.mu.Unlock()
	l.emit(ctx, due, start, now)
}

// flush writes the summary of the current interval now (at shutdown).
func (l *rejectLog) flush(ctx context.Context) {
	l.mu.Lock()
	now := l.now()
	due, start := l.takeLocked()
	l.mu.Unlock()
	l.emit(ctx, due, start, now)
}

// takeLocked ends the current interval and returns its counts.
func (l *rejectLog) takeLocked() (map[rejectKey]*rejectCount, time.Time) {
	due, start := l.counts, l.start
	l.counts, l.start = map[rejectKey]*rejectCount{}, time.Time{}
	return due, start
}

func (l *rejectLog) emit(ctx context.Context, due map[rejectKey]*rejectCount, start, end time.Time) {
	for k, c := range due {
		if c.suppressed == 0 {
			continue
		}
		l.logger.LogAttrs(ctx, slog.LevelWarn, "rejections_suppressed",
			slog.String("remote_addr", c.addr),
			slog.String("event", k.event),
			slog.String("reason", k.reason),
			slog.Int("status", c.status),
			slog.Int("count", c.suppressed),
			slog.Time("since", start),
			slog.Time("until", end),
		)
	}
}
