package ingress

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestResolveSource(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1 2001:db8:ffff::/48")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:ffff::/48"),
	}, trusted)

	for _, tc := range []struct {
		peer        string
		xff         []string
		addr, proxy string
	}{
		{"203.0.113.5:4000", nil, "203.0.113.5", ""},
		{"203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5", ""}, // untrusted peer: ignored
		{"10.1.1.1:4000", nil, "10.1.1.1", ""},
		{"10.1.1.1:4000", []string{"198.51.100.1"}, "198.51.100.1", "10.1.1.1"},
		{"10.1.1.1:4000", []string{"6.6.6.6, 198.51.100.1, 10.2.2.2"}, "198.51.100.1", "10.1.1.1"},
		{"10.1.1.1:4000", []string{"6.6.6.6", "198.51.100.1,10.2.2.2"}, "198.51.100.1", "10.1.1.1"},
		{"10.1.1.1:4000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3", "10.1.1.1"}, // all trusted: the leftmost
		{"10.1.1.1:4000", []string{"198.51.100.1, junk"}, "10.1.1.1", ""},
		{"10.1.1.1:4000", []string{"198.51.100.1, junk, 10.2.2.2"}, "10.2.2.2", "10.1.1.1"},
		{"[2001:db8:ffff::1]:4000", []string{"2001:db8::7"}, "2001:db8::7", "2001:db8:ffff::1"},
		{"[::ffff:10.1.1.1]:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1", "10.1.1.1"},
		{"not an address", []string{"198.51.100.1"}, "", ""},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		s := resolveSource(r, trusted)
		require.Equal(t, tc.addr, addrText(s.addr), "%s %v", tc.peer, tc.xff)
		require.Equal(t, tc.proxy, addrText(s.proxy), "%s %v", tc.peer, tc.xff)
	}

	_, err = ParseTrustedProxies("10.0.0.0/33")
	require.EqualError(t, err, `"10.0.0.0/33" is neither a CIDR prefix nor an IP address`)
	none, err := ParseTrustedProxies("")
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestFailureLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newFailureLimiter(1, 3, 4, func() time.Time { return now })
	a := netip.MustParseAddr("198.51.100.1")

	for range 3 {
		require.False(t, l.throttled(a))
		require.True(t, l.fail(a))
	}
	require.True(t, l.throttled(a))
	require.False(t, l.fail(a))
	require.Equal(t, 1, l.retryAfter())

	// One token a second.
	now = now.Add(time.Second)
	require.False(t, l.throttled(a))
	require.True(t, l.fail(a))
	require.False(t, l.fail(a))

	// IPv6 addresses share a bucket per /64.
	v6 := netip.MustParseAddr("2001:db8:1:2::1")
	for range 3 {
		require.True(t, l.fail(v6))
	}
	require.True(t, l.throttled(netip.MustParseAddr("2001:db8:1:2:ffff::9")))
	require.False(t, l.throttled(netip.MustParseAddr("2001:db8:1:3::1")))
	require.Equal(t, 2, l.size())

	// Beyond maxSources, new addresses share the overflow bucket.
	for i := range 2 {
		require.True(t, l.fail(netip.MustParseAddr(fmt.Sprintf("203.0.113.%d", i))))
	}
	require.Equal(t, 4, l.size())
	for i := range 3 {
		require.True(t, l.fail(netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i))), "overflow %d", i)
	}
	require.Equal(t, 4, l.size())
	require.True(t, l.throttled(netip.MustParseAddr("192.0.2.200")))
	require.False(t, l.fail(netip.MustParseAddr("192.0.2.201")))

	// Idle buckets (refilled) are evicted, making room again.
	now = now.Add(l.idleAfter + time.Second)
	require.True(t, l.fail(netip.MustParseAddr("192.0.2.202")))
	require.Equal(t, 1, l.size())
	require.False(t, l.throttled(a))
}

func TestCannotVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	sig := "v1," + "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
	h := func(id, ts, s string) http.Header {
		x := http.Header{}
		x.Set("svix-id", id)
		x.Set("svix-timestamp", ts)
		x.Set("svix-signature", s)
		return x
	}
	ts := fmt.Sprint(now.Unix())
	require.False(t, cannotVerify(h("msg_1", ts, sig), now))
	require.False(t, cannotVerify(h("msg_1", ts, "v1,bm90IGl0 "+sig), now))
	require.True(t, cannotVerify(http.Header{}, now))
	require.True(t, cannotVerify(h("msg_1", "soon", sig), now))
	require.True(t, cannotVerify(h("msg_1", fmt.Sprint(now.Add(-Tolerance-time.Second).Unix()), sig), now))
	require.True(t, cannotVerify(h("msg_1", fmt.Sprint(now.Add(Tolerance+time.Second).Unix()), sig), now))
	require.True(t, cannotVerify(h("msg_1", ts, "v1,short"), now))
	require.True(t, cannotVerify(h("msg_1", ts, "v2,"+sig[3:]), now))
}
