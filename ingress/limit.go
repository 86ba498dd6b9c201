package ingress

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the abuse limits (see Config).
const (
	DefaultFailedAuthRate  = 1.0
	DefaultFailedAuthBurst = 20
	DefaultMaxInFlight     = 64
	// DefaultMaxBodyReadsPerSource bounds the request bodies one source
	// address (IPv6: one /64) may be sending at once.
	DefaultMaxBodyReadsPerSource = 16
	// DefaultBodyReadTimeout bounds the time to receive one body: a
	// Clerk event is a few KiB, and Svix gives up on an attempt after 15 s.
	DefaultBodyReadTimeout = 10 * time.Second
	// DefaultMaxSources bounds how many source addresses the failed-auth
	// limiter tracks at once.
	DefaultMaxSources = 10_000
)

// ParseTrustedProxies parses a list of CIDR prefixes (or bare addresses)
// separated by spaces or commas. The empty setting trusts no proxy.
func ParseTrustedProxies(setting string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(setting, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// source is where a request came from: the client address used for logs,
// the ledger's source_ip and rate limiting, and the proxy it came through
// when X-Forwarded-For was honoured.
type source struct {
	addr  netip.Addr
	proxy netip.Addr
}

type sourceKey struct{}

func withSource(ctx context.Context, s source) context.Context {
	return context.WithValue(ctx, sourceKey{}, s)
}

func sourceOf(r *http.Request) source {
	s, _ := r.Context().Value(sourceKey{}).(source)
	return s
}

// resolveSource returns the request's source. X-Forwarded-For is read only
// when the peer is a trusted proxy: walking it from the right (each proxy
// appends the address it received the request from), the first address
// that is not a trusted proxy is the client. Entries to its left were
// written by the client and are ignored, so a client cannot choose its own
// address. A malformed entry stops the walk at the last trusted hop.
func resolveSource(r *http.Request, trusted []netip.Prefix) source {
	peer := peerAddr(r)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return source{addr: peer}
	}
	hops := forwardedFor(r.Header)
	if len(hops) == 0 {
		return source{addr: peer}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !isTrusted(client, trusted) {
			break
		}
	}
	if client == peer {
		return source{addr: peer}
	}
	return source{addr: client, proxy: peer}
}

func forwardedFor(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	return hops
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// failureLimiter is a token bucket per source address that is drawn on
// only by requests that fail verification. Memory is bounded: a bucket
// idle long enough to have refilled is indistinguishable from a new one
// and is dropped, and beyond maxSources addresses every new address shares
// one overflow bucket (so spraying addresses cannot grow the map or escape
// the limit).
type failureLimiter struct {
	limit      rate.Limit
	burst      int
	maxSources int
	idleAfter  time.Duration
	now        func() time.Time

	mu        sync.Mutex
	buckets   map[netip.Addr]*bucket
	overflow  *bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newFailureLimiter(perSecond float64, burst, maxSources int, now func() time.Time) *failureLimiter {
	idle := time.Minute
	if perSecond > 0 {
		// Time to refill a bucket from empty, plus a margin.
		idle = max(idle, time.Duration(float64(burst)/perSecond*float64(time.Second))+time.Second)
	}
	return &failureLimiter{
		limit:      rate.Limit(perSecond),
		burst:      burst,
		maxSources: maxSources,
		idleAfter:  idle,
		now:        now,
		buckets:    map[netip.Addr]*bucket{},
		overflow:   &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), burst)},
	}
}

// key groups IPv6 addresses by /64, the block one subscriber usually
// holds, so an attacker cannot get a fresh bucket per address.
func limiterKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// get returns a's bucket, creating it if there is room.
func (l *failureLimiter) get(a netip.Addr, now time.Time) *bucket {
	k := limiterKey(a)
	if b, ok := l.buckets[k]; ok {
		b.seen = now
		return b
	}
	if len(l.buckets) >= l.maxSources || now.Sub(l.lastSweep) > l.idleAfter {
		l.sweep(now)
	}
	if len(l.buckets) >= l.maxSources {
		return l.overflow
	}
	b := &bucket{lim: rate.NewLimiter(l.limit, l.burst), seen: now}
	l.buckets[k] = b
	return b
}

func (l *failureLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) > l.idleAfter {
			delete(l.buckets, k)
		}
	}
}

// throttled reports whether a's bucket is empty, without drawing on it.
func (l *failureLimiter) throttled(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := limiterKey(a)
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) < l.maxSources {
			return false
		}
		b = l.overflow
	}
	return b.lim.TokensAt(now) < 1
}

// fail draws one token for a failed request from a. It returns false when
// the bucket was already empty: the request is to be answered 429.
func (l *failureLimiter) fail(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	return l.get(a, now).lim.AllowN(now, 1)
}

// retryAfter is the number of seconds until a bucket holds a token again.
func (l *failureLimiter) retryAfter() int {
	if l.limit <= 0 {
		return RetryAfter
	}
	return max(1, int(math.Ceil(1/float64(l.limit))))
}

// size is the number of tracked addresses.
func (l *failureLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// cannotVerify reports whether a request's headers alone show that its
// signature cannot verify: missing or malformed Svix headers, a timestamp
// outside the tolerance, or no v1 signature of the right length. Such a
// request from a throttled source is answered 429 before its body is read.
func cannotVerify(h http.Header, now time.Time) bool {
	d, err := ReadHeaders(h)
	if err != nil {
		return true
	}
	if now.Sub(d.Timestamp).Abs() > Tolerance {
		return true
	}
	for _, sig := range strings.Fields(d.Signature) {
		// v1,<base64 of a 32-byte HMAC-SHA256> is 3+44 characters.
		if strings.HasPrefix(sig, "v1,") && len(sig) == 47 {
			return false
		}
	}
	return true
}

// readerLimit bounds, per source address (IPv6 per /64, as the failure
// limiter), the request bodies being received at once. A body is read
// before anything about the request can be verified, so without a bound
// one source trickling bodies would hold what everyone shares. Memory is
// bounded by the requests in progress: a source's entry goes when its
// last read ends.
type readerLimit struct {
	perSource int

	mu   sync.Mutex
	open map[netip.Addr]int
}

func newReaderLimit(perSource int) *readerLimit {
	return &readerLimit{perSource: perSource, open: map[netip.Addr]int{}}
}

// acquire takes one of a's read slots without waiting; false means a
// already has perSource bodies in progress.
func (l *readerLimit) acquire(a netip.Addr) bool {
	k := limiterKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k] >= l.perSource {
		return false
	}
	l.open[k]++
	return true
}

// release gives back a slot taken by acquire.
func (l *readerLimit) release(a netip.Addr) {
	k := limiterKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k] <= 1 {
		delete(l.open, k)
		return
	}
	l.open[k]--
}

// sources is the number of addresses with a body in progress.
func (l *readerLimit) sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}
