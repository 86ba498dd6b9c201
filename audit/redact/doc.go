// Package redact is webhookd's logging layer, and its contract is simple:
// every log line webhookd writes passes through the redacting handler
// returned by [NewRedactingHandler] (the process logger from [NewLogger]
// is always wrapped in it), so no line carries personal data or
// credentials, whoever wrote the logging call and whatever they passed.
//
// Clerk webhooks describe people: names, email addresses, phone numbers,
// IP addresses, free-form metadata. webhookd serves teams that keep health
// data (HIPAA), where a log file is a disclosure channel like any other,
// and logs are shipped, retained and read far more widely than the ledger.
// Redaction is therefore done once, centrally, and fails closed.
//
// Two independent rules apply to every record, at any nesting depth
// (groups, WithAttrs, WithGroup, maps, slices and structs logged with
// slog.Any, which are first rendered to JSON-like maps):
//
//   - By key: an attribute or map key that denotes personal data or a
//     credential (email, first_name, phone_numbers, client_ip, user_agent,
//     *_metadata, image_url, external_id, password, token, svix-signature,
//     ...) has its whole value replaced by [Redacted]. Keys are compared
//     after normalisation, so firstName, First-Name and FIRST_NAME match.
//   - By shape: every string (messages, values under innocent keys, map
//     keys, error texts) has email-shaped and phone-shaped substrings,
//     credentials in URLs and "token=..." pairs, and embedded JSON objects
//     and arrays replaced by [Redacted]. A string over 32 KiB is hidden
//     whole: it can only be a body logged by mistake, and scanning it
//     would let its sender choose how long logging takes.
//
// Identifiers stay readable because an operator needs them to find an
// event: Clerk ids (user_..., sess_..., org_..., idn_...), svix ids,
// error ids, timestamps, durations, UUIDs and paths are never masked, and
// keys such as clerk_id, user_id, svix_id, event_type and error_id are
// never redacted by key. The address of the peer that delivered a webhook
// (Svix's servers, not an end user) is logged under remote_addr, which stays
// visible; end-user addresses (ip, ip_address, client_ip, source_ip) do not.
//
// Shape rules have limits that callers must respect. A name inside free
// text cannot be recognised, so callers never log a raw request body or a
// payload fragment: the ingress logs ids and facts only. A bare digit run
// is not a phone number (unix timestamps are bare digit runs too), and an
// IP address in free text is kept (database and peer addresses appear in
// network errors), so end-user numbers and addresses belong under a key
// that says what they are. JSON quoted in any logged string, such as an
// error that echoes its input, is removed whole; [SafeError] applies the
// same masking to error text that leaves the process by another route,
// and [Value] applies the log rules to a decoded JSON document (the
// redacted payloads of an export bundle).
//
// Every package logs through this one; it imports nothing of webhookd's,
// so any package may import it.
package redact
