// Package ingress is webhookd's HTTP side: the endpoint Clerk's Svix calls,
// the status, health and readiness endpoints, and the single place where a
// domain error code becomes an HTTP status.
//
// Contract: a delivery is answered 2xx only after its ledger append has
// committed (or the svix-id was already there); every other outcome is a
// non-2xx that makes Svix retry, with a JSON body holding an error_id that
// finds the matching log line. Answers and log lines never carry secrets,
// personal data or internal error texts.
package ingress
