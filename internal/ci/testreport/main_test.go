package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func run(t *testing.T, events string) (string, int) {
	t.Helper()
	var echo, out bytes.Buffer
	r, err := read(strings.NewReader(events), &echo)
	require.NoError(t, err)
	status := r.print(&out)
	return echo.String() + out.String(), status
}

const (
	passA = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
`
	failB = `{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: want 1, got 2\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p"}
`
	skipRoot = `{"Action":"output","Package":"q","Test":"TestRoot","Output":"    r_test.go:3: runs as root only\n"}
{"Action":"output","Package":"q","Test":"TestRoot","Output":"--- SKIP: TestRoot (0.00s)\n"}
{"Action":"skip","Package":"q","Test":"TestRoot"}
`
	skipFixture = `{"Action":"output","Package":"q","Test":"TestVectors","Output":"    v_test.go:3: no Svix vectors at /x/svix-vectors.json (set FIXTURES_DIR)\n"}
{"Action":"skip","Package":"q","Test":"TestVectors"}
`
	noTests = `{"Action":"output","Package":"r","Output":"?   \tr\t[no test files]\n"}
{"Action":"skip","Package":"r"}
`
)

func TestPassesAndSkipsWithAReason(t *testing.T) {
	out, status := run(t, passA+`{"Action":"pass","Package":"p"}`+"\n"+skipRoot+noTests)
	require.Equal(t, 0, status, out)
	require.Contains(t, out, "ok  \tp\n")
	require.Contains(t, out, "q TestRoot: r_test.go:3: runs as root only")
	require.True(t, strings.HasSuffix(out, "\n1 passed, 0 failed, 1 skipped\n"), out)
}

func TestFailureShowsItsOutput(t *testing.T) {
	out, status := run(t, passA+failB)
	require.Equal(t, 1, status)
	require.Contains(t, out, "FAIL\tp\n")
	require.Contains(t, out, "--- failed: p TestB\n    b_test.go:9: want 1, got 2\n")
	require.True(t, strings.HasSuffix(out, "\n1 passed, 1 failed, 0 skipped\n"), out)
}

func TestSkipForAMissingFileFails(t *testing.T) {
	out, status := run(t, passA+skipFixture)
	require.Equal(t, 1, status)
	require.Contains(t, out, "1 test(s) skipped for a missing file or fixture")
	require.Contains(t, out, "q TestVectors: v_test.go:3: no Svix vectors")
}

func TestNoTestRunFails(t *testing.T) {
	out, status := run(t, noTests)
	require.Equal(t, 1, status)
	require.Contains(t, out, "no test ran")
}

func TestBuildErrorsAreEchoed(t *testing.T) {
	out, status := run(t, "# p\n./a.go:3:1: syntax error\n"+`{"Action":"fail","Package":"p"}`+"\n")
	require.Equal(t, 1, status)
	require.Contains(t, out, "./a.go:3:1: syntax error")
}
