// Package admin is webhookd's admin API (JSON under /api/) and web console
// (HTML at /), served on their own listener (WEBHOOKD_ADMIN_ADDR) for the
// people who answer to auditors.
//
// Its contract:
//   - Every request is authenticated: the API by a bearer token
//     (admin_tokens, stored hashed), the console by a session cookie
//     (admin_sessions) that a token signs in. No token: 401; a viewer asking
//     for an admin action: 403; every error a JSON (API) or HTML (console)
//     answer with an error id that is also on its log line.
//   - Personal fields are redacted by default. Revealing them needs the
//     admin role and a reason.
//   - Every read of a user's record (search, open, timeline, reveal,
//     export) appends a webhookd.personal_data.accessed entry to the ledger
//     first, signed like every entry webhookd appends; a read whose entry
//     cannot be appended is refused. Token creation and revocation are
//     ledger entries too, and an access change is the same
//     webhookd.user.access_changed event `webhookd users assign` appends
//     (RecordAccessChange).
//   - No token and no personal data ever appears in a URL the console
//     makes (search and reveal are POSTed forms), nor in a log line.
package admin
