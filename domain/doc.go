// Package domain holds webhookd's vocabulary: the Clerk event envelope as the
// ledger records it, ledger entries, and the error codes every layer uses.
//
// It has no dependencies beyond the standard library, so every other package
// (ingress, event store, projections, audit) can share these types without
// pulling in each other's drivers.
package domain
