package migrations

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestEmbeddedMigrationsAreNumberedWithoutGaps(t *testing.T) {
	t.Parallel()
	n, err := checkNumbering(files)
	require.NoError(t, err)
	require.Equal(t, Latest, n)
	require.GreaterOrEqual(t, n, int64(3))
}

func TestNumberingErrors(t *testing.T) {
	t.Parallel()
	file := &fstest.MapFile{Data: []byte("-- +goose Up\n")}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"sql/001_a.sql", "sql/003_c.sql"}, "migration 002 is missing: versions must run 1..3 without gaps"},
		{[]string{"sql/001_a.sql", "sql/001_b.sql"}, "migrations 001_a.sql and 001_b.sql share version 1"},
		{[]string{"sql/1_a.sql"}, "migration 1_a.sql: name must be NNN_name.sql"},
		{[]string{"sql/abc.sql"}, "migration abc.sql: name must be NNN_name.sql"},
	} {
		fsys := fstest.MapFS{}
		for _, n := range tc.names {
			fsys[n] = file
		}
		_, err := checkNumbering(fsys)
		require.EqualError(t, err, tc.want, tc.names)
	}
}
