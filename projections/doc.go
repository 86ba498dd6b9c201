// Package projections builds read models from the ledger. A read model is
// described once (ModelSpec: its table, how an entry decodes, its rules),
// and the live Runner, rebuilds and checks, lag and the re-driving of
// recorded failures work for every read model by name. Each projection
// reads the ledger in safe order through its own poll loop over
// eventstore.ScanAfter; its writes and its position commit in one
// transaction, and an entry applied alone runs inside a savepoint, so a
// failing entry leaves none of its writes behind and every entry takes
// effect exactly once, whatever the number of webhookd processes.
//
// Projections must converge whatever the order Clerk delivered events in:
// they order by Clerk's own timestamps, not by arrival.
package projections
