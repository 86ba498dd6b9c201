// Package projections builds read models from the ledger. Each projection
// consumes ledger_events through a watermill-sql subscriber with its own
// consumer group; its writes and the consumer offset commit in one
// transaction, and each event is applied inside a savepoint, so a failing
// event leaves none of its writes behind (watermill#224) and every event
// takes effect exactly once, whatever the number of webhookd processes.
//
// Projections must converge whatever the order Clerk delivered events in:
// they order by Clerk's own timestamps, not by arrival.
package projections
