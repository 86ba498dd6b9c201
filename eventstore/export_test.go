package eventstore

// QueuedAppends is how many appends wait for a writer (for tests that need
// appends to share a batch).
func QueuedAppends(s *Store) int { return len(s.queue) }

// InsertQuery is the INSERT text of a batch of rows rows, and how many
// parameters a row takes.
func InsertQuery(rows int) (string, int) { return insertQuery(rows), insertWidth }
