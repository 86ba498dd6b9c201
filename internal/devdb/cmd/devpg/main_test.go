package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// As root, devpg names the exact command that runs the tests on an existing
// PostgreSQL: TEST_DATABASE_URL, not DATABASE_URL, which the tests ignore.
func TestRootIsToldTheExactTestCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root is refused; as another user devpg starts PostgreSQL")
	}
	var stderr bytes.Buffer
	code := run([]string{"true"}, &stderr)
	require.Equal(t, 1, code)
	require.Equal(t, "devpg: PostgreSQL refuses to run as root, so the tests cannot have their own: run `make test` as a non-root user, or on an existing PostgreSQL with: TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' make test\n", stderr.String())
}
