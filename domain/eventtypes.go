package domain

// ClerkEventTypes lists every webhook event type Clerk sends, in the order
// of the WebhookEvent union in the npm package @clerk/backend 3.25.0
// (dist/api/resources/Webhooks.d.ts), plus "session.pending" (a session
// waiting on session tasks: its status exists in Clerk's session model, but
// that release's typings do not list the event). The ledger accepts every
// dotted type, known or not; this list bounds metric labels and is what
// the fake Clerk builds. Callers must treat it as read-only.
var ClerkEventTypes = []string{
	"user.created", "user.updated", "user.deleted",
	"session.created", "session.ended", "session.removed", "session.revoked", "session.pending",
	"email.created",
	"sms.created",
	"organization.created", "organization.updated", "organization.deleted",
	"organizationDomain.created", "organizationDomain.updated", "organizationDomain.deleted",
	"organizationMembership.created", "organizationMembership.updated", "organizationMembership.deleted",
	"organizationInvitation.created", "organizationInvitation.accepted", "organizationInvitation.revoked",
	"role.created", "role.updated", "role.deleted",
	"permission.created", "permission.updated", "permission.deleted",
	"waitlistEntry.created", "waitlistEntry.updated",
	"paymentAttempt.created", "paymentAttempt.updated",
	"subscription.created", "subscription.updated", "subscription.active", "subscription.pastDue",
	"subscriptionItem.created", "subscriptionItem.updated", "subscriptionItem.active",
	"subscriptionItem.canceled", "subscriptionItem.upcoming", "subscriptionItem.ended",
	"subscriptionItem.abandoned", "subscriptionItem.incomplete", "subscriptionItem.pastDue",
	"subscriptionItem.freeTrialEnding",
}
