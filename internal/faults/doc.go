// Package faults holds webhookd's fault drills: tests that run real
// webhookd processes against a real PostgreSQL and break things while a
// Svix-like sender pushes events (SIGKILL and restart, PostgreSQL stopped
// and started, several processes on one database), then check what a user
// would see: every event exactly once in the ledger and a users table equal
// to the one in-order delivery gives.
//
// The tests are behind the build tag "faults" so that a plain `go test
// ./...` skips them; run them with `make test-faults`. The PostgreSQL drill
// needs WEBHOOKD_FAULTS_PG_CTL, a command that takes "stop" or "start" as
// its last argument (e.g. "pg_ctlcluster --skip-systemctl-redirect 15
// main", as root); it is skipped, saying so, when that is not set. It stops
// the whole server, so nothing else may use that server meanwhile.
package faults
