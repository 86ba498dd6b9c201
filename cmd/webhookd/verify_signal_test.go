//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/bundle"
)

// SIGTERM stops a verification in the middle of a file, with a clear line
// and a non-zero exit, instead of being ignored until the end (before the
// fix, 445 s later on this input). The input is 60 GiB: a sparse
// entries.csv declared by an (allowed) unsigned manifest, which hashing
// takes minutes to get through. The real binary runs on it, and nothing is
// written to TMPDIR.
func TestVerifyStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	_, _, dir := exportedBundle(t)
	csv := filepath.Join(dir, bundle.EntriesCSVFile)
	const huge = 60 << 30
	require.NoError(t, os.Truncate(csv, huge))
	require.NoError(t, os.Remove(filepath.Join(dir, bundle.ManifestSignatureFile)))
	manifest := filepath.Join(dir, bundle.ManifestFile)
	data, err := os.ReadFile(manifest)
	require.NoError(t, err)
	var m bundle.Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	m.Files[bundle.EntriesCSVFile] = bundle.FileDigest{SHA256: m.Files[bundle.EntriesCSVFile].SHA256, Bytes: huge}
	data, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(manifest, data, 0o644))

	bin := filepath.Join(t.TempDir(), "webhookd")
	build := exec.Command("go", "build", "-o", bin, "github.com/webhookd/webhookd/cmd/webhookd")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	tmp := t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "verify", dir, "--trust-bundle-key", "--allow-unsigned-manifest")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "LOG_FORMAT=json"}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Once it has opened entries.csv it is in the long read.
	fds := filepath.Join("/proc", itoa(int64(cmd.Process.Pid)), "fd")
	require.Eventually(t, func() bool {
		names, _ := os.ReadDir(fds)
		for _, n := range names {
			if target, _ := os.Readlink(filepath.Join(fds, n.Name())); target == csv {
				return true
			}
		}
		return false
	}, 60*time.Second, 5*time.Millisecond, "verify never opened entries.csv")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))

	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute): // a hang guard, not a speed limit
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("verify still running 2 minutes after SIGTERM; stderr: %s", stderr.String())
	}
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exit: %v", err)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, stderr.String(), "webhookd: verify was interrupted (SIGINT or SIGTERM) before it finished: nothing was verified\n")
	require.Empty(t, stdout.String(), "no verdict for an interrupted check")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left, "verify wrote to TMPDIR")
}
