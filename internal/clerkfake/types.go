package clerkfake

import (
	"errors"
	"fmt"
	"github.com/webhookd/webhookd/domain"
	"strings"
)

// Types lists every webhook event type Clerk sends: domain.ClerkEventTypes.
// Build accepts exactly these. Callers must treat it as read-only.
var Types = domain.ClerkEventTypes

// family describes the subject of one group of event types (the part of the
// type before the dot).
type family struct {
	prefix string // data.id prefix
	object string // data.object
	build  func(b *builder) map[string]any
}

// families maps the part of an event type before the dot to its subject.
// The prefixes of user, session, organization, membership, invitation,
// domain, sms and identification ids are those of Clerk's published
// examples; the others (email, role, permission, waitlist and billing) are
// plausible stand-ins: nothing should depend on them.
var families = map[string]family{
	"user":                   {"user_", "user", (*builder).user},
	"session":                {"sess_", "session", (*builder).session},
	"email":                  {"ema_", "email", (*builder).email},
	"sms":                    {"sms_", "sms_message", (*builder).sms},
	"organization":           {"org_", "organization", (*builder).organization},
	"organizationDomain":     {"orgdmn_", "organization_domain", (*builder).organizationDomain},
	"organizationMembership": {"orgmem_", "organization_membership", (*builder).organizationMembership},
	"organizationInvitation": {"orginv_", "organization_invitation", (*builder).organizationInvitation},
	"role":                   {"role_", "role", (*builder).role},
	"permission":             {"perm_", "permission", (*builder).permission},
	"waitlistEntry":          {"wle_", "waitlist_entry", (*builder).waitlistEntry},
	"paymentAttempt":         {"cpa_", "commerce_payment_attempt", (*builder).paymentAttempt},
	"subscription":           {"csub_", "commerce_subscription", (*builder).subscription},
	"subscriptionItem":       {"csubi_", "commerce_subscription_item", (*builder).subscriptionItem},
}

// known is the set of Types, taken once so that a caller changing the
// exported slice cannot change what Build accepts.
var known = func() map[string]bool {
	m := make(map[string]bool, len(Types))
	for _, t := range Types {
		fam, _, ok := strings.Cut(t, ".")
		if !ok {
			panic("clerkfake: event type without a dot: " + t)
		}
		if _, ok := families[fam]; !ok {
			panic("clerkfake: event type without a family: " + t)
		}
		if m[t] {
			panic("clerkfake: duplicate event type: " + t)
		}
		m[t] = true
	}
	return m
}()

// ErrUnknownType is wrapped by the error Build returns for an event type
// that is not in Types.
var ErrUnknownType = errors.New("unknown Clerk event type")

// Known reports whether eventType is one of Types.
func Known(eventType string) bool { return known[eventType] }

// IDPrefix returns the prefix of data.id for eventType ("user_" for
// "user.updated", "orgmem_" for "organizationMembership.created", …) and
// whether eventType is known.
func IDPrefix(eventType string) (string, bool) {
	if !known[eventType] {
		return "", false
	}
	fam, _, _ := strings.Cut(eventType, ".")
	return families[fam].prefix, true
}

// unknownTypeError names the bad type, suggests a near miss, and says where
// the valid types are listed.
func unknownTypeError(eventType string) error {
	hint := ""
	for _, t := range Types {
		if strings.EqualFold(t, eventType) {
			hint = fmt.Sprintf("; did you mean %q?", t)
			break
		}
	}
	return fmt.Errorf("clerkfake: %w %q%s (the %d valid types are listed in clerkfake.Types; types are case-sensitive, e.g. %q)",
		ErrUnknownType, eventType, hint, len(Types), "organizationMembership.created")
}
