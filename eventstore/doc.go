// Package eventstore is the ledger: it appends entries to the append-only
// ledger_events table through Watermill's SQL publisher and reads them back
// in safe order. It is the only package that speaks to PostgreSQL about the
// ledger, and it translates the driver's errors at this boundary: a
// re-delivered svix-id becomes a duplicate result, a database that cannot be
// reached becomes a domain.EUNAVAILABLE error, anything else
// domain.EINTERNAL. Nothing above this package sees a pgx error type.
package eventstore
