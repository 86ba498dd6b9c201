package forward_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The consumer in the README is docs/examples/natsconsumer, word for
// word, and it works: built and run against a stream the forwarder fills,
// it prints each user event (and only those) once, in ledger order.
func TestREADMEConsumerExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../docs/examples/natsconsumer/main.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "```go\n"+string(src)+"```\n", "the README shows docs/examples/natsconsumer/main.go as it is")

	h := setup(t)
	rows := makeRows(t, "msg_example", 70, clerkTypes)
	appendRows(t, h.db, rows, 10)
	f := h.start()
	waitCaughtUp(t, f, time.Minute)

	bin := filepath.Join(t.TempDir(), "natsconsumer")
	build := exec.Command("go", "build", "-o", bin, "../docs/examples/natsconsumer")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NATS_URL="+h.url, "STREAM="+h.stream, "SUBJECT="+h.prefix+".user.*")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var want []string
	for _, r := range rows {
		if strings.HasPrefix(r.eventType, "user.") {
			want = append(want, fmt.Sprintf("%s.%s %s", h.prefix, r.eventType, r.svixID))
		}
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	for len(got) < len(want) {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "the consumer stopped after %d lines", len(got))
			fields := strings.Fields(l)
			require.Len(t, fields, 4, l)
			got = append(got, fields[0]+" "+fields[1])
		case <-time.After(30 * time.Second):
			t.Fatalf("the consumer printed %d of %d lines", len(got), len(want))
		}
	}
	require.Equal(t, want, got)
}
