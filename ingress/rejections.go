package ingress

import (
	"sync"
	"time"
)

// rejectionHours is how many hours of rejected deliveries Metrics keeps
// for RejectedPerHour.
const rejectionHours = 7 * 24

// rejectionHistory counts rejected deliveries per hour, in memory: the
// ledger keeps only what was accepted, so this is the one place the admin
// console's chart can read rejections from (since the process started).
type rejectionHistory struct {
	mu     sync.Mutex
	counts map[int64]int // unix hour → rejected deliveries
}

func (h *rejectionHistory) add(now time.Time) {
	hour := now.Unix() / 3600
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[int64]int{}
	}
	h.counts[hour]++
	if len(h.counts) > rejectionHours {
		for k := range h.counts {
			if k <= hour-rejectionHours {
				delete(h.counts, k)
			}
		}
	}
}

// RejectedPerHour returns the deliveries this process answered with
// anything but accepted or duplicate, per hour (the start of the hour,
// UTC) since since; at most the last seven days.
func (m *Metrics) RejectedPerHour(since time.Time) map[time.Time]int {
	out := map[time.Time]int{}
	if m == nil {
		return out
	}
	m.rejections.mu.Lock()
	defer m.rejections.mu.Unlock()
	for hour, n := range m.rejections.counts {
		t := time.Unix(hour*3600, 0).UTC()
		if !t.Before(since.UTC().Truncate(time.Hour)) {
			out[t] = n
		}
	}
	return out
}
