// Package clerkfake fakes Clerk's side of Clerk webhooks, whose API cannot
// run here: it builds realistic Clerk webhook events and signs and delivers
// them exactly as Clerk's Svix does. `webhookd send`, tests, benchmarks and
// the load generator use it.
//
// The contract:
//
//   - Types is the one list of event types, those of @clerk/backend's
//     Webhooks.d.ts (plus session.pending). Build accepts exactly these and
//     returns an error wrapping ErrUnknownType for anything else.
//   - Build returns a Clerk event envelope ("data", "event_attributes",
//     "instance_id", "object":"event", "timestamp" in unix milliseconds,
//     "type") whose data.id is a Clerk-style id with the type's prefix
//     (IDPrefix) and whose data follows @clerk/backend's JSON.d.ts. User
//     payloads are 1.3 to 2 KB (1.7 KB on average) and put the primary email
//     address first or second at random. All addresses are reserved documentation ones.
//   - With a non-zero Options.Seed and a fixed Options.Time, Build is
//     deterministic, and one seed names one user and one organization in
//     every event type.
//   - Sign produces the svix-id, svix-timestamp and svix-signature headers
//     with the svix library's own Webhook.Sign, so svix.Webhook.Verify
//     accepts them with the same whsec_ secret and rejects them with any
//     other; NewSecret and NewMsgID make secrets and ids in Svix's formats.
//   - Deliver POSTs a signed body as Svix would and reports the answer; it
//     never retries (the caller plays Svix's retry schedule if it wants).
package clerkfake
