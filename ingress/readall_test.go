package ingress

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// TestReadAllReadsTheWholeBodyWhateverItAnnounced: the announced length is
// a hint for the buffer, never a bound or a promise: a body shorter,
// longer or exactly as long as announced is returned whole, in pieces of
// any size, and a read error is returned, as io.ReadAll would.
func TestReadAllReadsTheWholeBodyWhateverItAnnounced(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("0123456789abcdef", 100) // 1600 bytes
	for _, tc := range []struct {
		name      string
		announced int64
	}{
		{"exact", 1600},
		{"unknown", -1},
		{"zero", 0},
		{"shorter than announced", 4000},
		{"longer than announced", 10},
		{"announced over the limit", 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body)), iotest.HalfReader(strings.NewReader(body)), iotest.DataErrReader(strings.NewReader(body))} {
				got, err := readAll(r, tc.announced, 1<<20)
				require.NoError(t, err)
				require.Equal(t, body, string(got))
			}
		})
	}
	got, err := readAll(strings.NewReader(""), 0, 1<<20)
	require.NoError(t, err)
	require.Empty(t, got)

	boom := errors.New("connection reset")
	got, err = readAll(io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom)), 1600, 1<<20)
	require.ErrorIs(t, err, boom)
	require.Equal(t, "partial", string(got))

	// Exactly announced: one allocation of announced+1 bytes, no growth.
	got, err = readAll(bytes.NewReader([]byte(body)), 1600, 1<<20)
	require.NoError(t, err)
	require.Equal(t, 1601, cap(got))
}
