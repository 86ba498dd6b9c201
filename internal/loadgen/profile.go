package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Statement is one line of PostgreSQL's share of a run, from
// pg_stat_statements: a normalised statement and what its executions cost
// on the server while webhookd took the load.
type Statement struct {
	Query string `json:"query"`
	Calls int64  `json:"calls"`
	// TotalMs is the statement's total execution time; PerEventUs the
	// same over the run's events; MeanMs per call.
	TotalMs    float64 `json:"total_ms"`
	MeanMs     float64 `json:"mean_ms"`
	PerEventUs float64 `json:"per_event_us"`
	Rows       int64   `json:"rows"`
	// WALBytes is the WAL the statement wrote.
	WALBytes int64 `json:"wal_bytes"`
}

// resetStatements clears pg_stat_statements, so that what is read after the
// load is the load's. It reports whether the extension is there.
func resetStatements(ctx context.Context, conn *pgx.Conn) bool {
	_, err := conn.Exec(ctx, `SELECT public.pg_stat_statements_reset()`)
	return err == nil
}

// topStatements returns the n statements of the current database that
// took the most execution time since resetStatements.
func topStatements(ctx context.Context, conn *pgx.Conn, n, events int) ([]Statement, error) {
	rows, err := conn.Query(ctx, `SELECT query, calls, total_exec_time, mean_exec_time, rows, wal_bytes::bigint
		FROM public.pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query NOT LIKE '%pg_stat_statements%'
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		if err := rows.Scan(&s.Query, &s.Calls, &s.TotalMs, &s.MeanMs, &s.Rows, &s.WALBytes); err != nil {
			return nil, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		s.Query = strings.Join(strings.Fields(s.Query), " ")
		if len(s.Query) > 160 {
			s.Query = s.Query[:160] + "…"
		}
		s.PerEventUs = float64(int(s.TotalMs*1e4/float64(events))) / 10
		out = append(out, s)
	}
	return out, rows.Err()
}

// writeStatements writes statements as a table to dir/pg_stat_statements.txt.
func writeStatements(dir string, statements []Statement) error {
	f, err := os.Create(filepath.Join(dir, "pg_stat_statements.txt"))
	if err != nil {
		return err
	}
	PrintStatements(f, statements)
	return f.Close()
}

// PrintStatements writes statements as a table.
func PrintStatements(w io.Writer, statements []Statement) {
	fmt.Fprintf(w, "%10s %10s %10s %12s %8s %10s  %s\n", "calls", "total ms", "mean ms", "µs per event", "rows", "WAL kB", "query")
	for _, s := range statements {
		fmt.Fprintf(w, "%10d %10.1f %10.3f %12.1f %8d %10d  %s\n", s.Calls, s.TotalMs, s.MeanMs, s.PerEventUs, s.Rows, s.WALBytes/1024, s.Query)
	}
}
