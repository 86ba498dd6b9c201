package clerkfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	mrand "math/rand/v2"
	"time"
)

// base62 is the KSUID alphabet, which Clerk's and Svix's ids use.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ksuidEpoch is the KSUID time origin (2014-05-13T16:53:20Z).
const ksuidEpoch = 1_400_000_000

// idLen is the length of the part of a Clerk or Svix id after its prefix.
const idLen = 27

// globalSource draws from math/rand/v2's top-level generator (ChaCha8,
// randomly seeded, safe for concurrent use), so unseeded builds neither
// lock nor allocate a generator.
type globalSource struct{}

func (globalSource) Uint64() uint64 { return mrand.Uint64() }

// unseeded is shared by every unseeded build; it keeps no state of its own.
var unseeded = mrand.New(globalSource{})

// seededRand returns a PCG generator for seed and label: the same pair
// always yields the same sequence, and different labels give independent
// streams, so one value can change without shifting all the others.
func seededRand(seed int64, label string) *mrand.Rand {
	h := fnv.New64a()
	h.Write([]byte(label))
	return mrand.New(mrand.NewPCG(uint64(seed), h.Sum64()))
}

// ksuid returns the 27-character base62 form of a KSUID: 4 bytes of
// seconds since the KSUID epoch, then 16 random bytes. Clerk's ids
// (user_29w83sxmDNGwOuEthce5gg56FcC) and Svix's message ids have this
// shape, so ids made close in time sort together, as real ones do.
func ksuid(at time.Time, r *mrand.Rand) string {
	var raw [20]byte
	secs := at.Unix() - ksuidEpoch
	if secs < 0 {
		secs = 0
	}
	if secs > 1<<32-1 {
		secs = 1<<32 - 1
	}
	binary.BigEndian.PutUint32(raw[0:4], uint32(secs))
	binary.BigEndian.PutUint64(raw[4:12], r.Uint64())
	binary.BigEndian.PutUint64(raw[12:20], r.Uint64())
	return encodeBase62(raw)
}

// encodeBase62 writes the 160-bit big-endian number raw as exactly 27
// base62 digits (62^27 > 2^160), most significant first.
func encodeBase62(raw [20]byte) string {
	var words [5]uint32
	for i := range words {
		words[i] = binary.BigEndian.Uint32(raw[i*4:])
	}
	var out [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		var rem uint64
		for j := range words {
			cur := rem<<32 | uint64(words[j])
			words[j] = uint32(cur / 62)
			rem = cur % 62
		}
		out[i] = base62[rem]
	}
	return string(out[:])
}

// NewID returns a new Clerk-style id: prefix followed by 27 base62
// characters (a KSUID for the current time), e.g. NewID("user_").
func NewID(prefix string) string {
	return prefix + ksuid(time.Now(), unseeded)
}

// NewMsgID returns a new Svix message id, "msg_" followed by 27 base62
// characters: a KSUID, i.e. the current time then 128 random bits, as the
// svix-id of live deliveries.
func NewMsgID() string {
	return NewID("msg_")
}

// NewSecret returns a new endpoint signing secret in Svix's format:
// "whsec_" followed by the standard base64 of 24 bytes from crypto/rand.
// svix.NewWebhook accepts it.
func NewSecret() string {
	var key [24]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "whsec_" + base64.StdEncoding.EncodeToString(key[:])
}
