package eventstore

// QueuedAppends is how many appends wait for a writer (for tests that need
// appends to share a batch).
func QueuedAppends(s *Store) int { return len(s.queue) }
