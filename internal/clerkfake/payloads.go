package clerkfake

import (
	"fmt"
	"hash/fnv"
	mrand "math/rand/v2"
	"time"
)

// Payload builders, one per family of event types. Field names and shapes
// follow @clerk/backend's dist/api/resources/JSON.d.ts and the examples in
// Clerk's docs; values are made up.

const (
	day   = 24 * time.Hour
	msDay = int64(day / time.Millisecond)
)

func msOf(t time.Time) int64 { return t.UnixMilli() }

// imageURL is a Clerk image URL for a resource: img.clerk.com followed by
// an opaque token (a function of the resource id, so seeded events agree).
func (b *builder) imageURL(resourceID string) string {
	h := fnv.New64a()
	h.Write([]byte(resourceID))
	r := mrand.New(mrand.NewPCG(h.Sum64(), 0x1ce))
	tok := make([]byte, 32)
	for i := range tok {
		tok[i] = base62[r.IntN(len(base62))]
	}
	return "https://img.clerk.com/" + string(tok)
}

func deleted(id, object string) obj {
	return obj{"deleted": true, "id": id, "object": object}
}

// ---- users ----

func (b *builder) user() obj {
	if b.action == "deleted" {
		return deleted(b.subjectID(), "user")
	}
	created := msOf(b.created())
	lastSignIn := created
	if b.action != "created" {
		lastSignIn = b.ms - b.rng("signin").Int64N(msDay)
	}
	return b.userJSON(b.userID(), created, b.ms, lastSignIn)
}

// userJSON is a UserJSON for id, 1.3 to 2 KB with its envelope: two email
// addresses (the primary one is either), mostly a phone number, half the
// time a Google account linked to the second address, and metadata.
func (b *builder) userJSON(id string, created, updated, lastSignIn int64) obj {
	p := b.person()
	emails := make([]any, 2)
	for i := range p.emails {
		strategy, linked := "email_code", []any{}
		if i == 1 && p.google {
			strategy = "from_oauth_google"
			linked = []any{obj{"id": p.googleID, "type": "oauth_google"}}
		}
		emails[i] = obj{
			"email_address": p.emails[i],
			"id":            p.emailIDs[i],
			"linked_to":     linked,
			"object":        "email_address",
			"verification":  obj{"status": "verified", "strategy": strategy},
		}
	}
	externals := []any{}
	if p.google {
		externals = append(externals, obj{
			"email_address":    p.emails[1],
			"first_name":       p.first,
			"id":               p.googleID,
			"last_name":        p.last,
			"object":           "google_account",
			"provider":         "oauth_google",
			"provider_user_id": p.googleSub,
			"verification":     obj{"status": "verified", "strategy": "oauth_google"},
		})
	}
	phones, primaryPhone := []any{}, any(nil)
	if p.hasPhone {
		phones = append(phones, obj{
			"id":           p.phoneID,
			"linked_to":    []any{},
			"object":       "phone_number",
			"phone_number": p.phone,
			"verification": obj{"status": "verified", "strategy": "phone_code"},
		})
		primaryPhone = p.phoneID
	}
	return obj{
		"created_at":               created,
		"email_addresses":          emails,
		"external_accounts":        externals,
		"external_id":              p.externalID,
		"first_name":               p.first,
		"has_image":                p.hasImage,
		"id":                       id,
		"image_url":                b.imageURL(id),
		"last_name":                p.last,
		"last_sign_in_at":          lastSignIn,
		"object":                   "user",
		"password_enabled":         !p.google,
		"phone_numbers":            phones,
		"primary_email_address_id": p.emailIDs[p.primary],
		"primary_phone_number_id":  primaryPhone,
		"primary_web3_wallet_id":   nil,
		"private_metadata":         obj{"crm_id": "crm_" + p.externalID[4:]},
		"public_metadata":          obj{"onboarded": p.google},
		"two_factor_enabled":       false,
		"unsafe_metadata":          obj{},
		"updated_at":               updated,
		"username":                 p.username,
		"web3_wallets":             []any{},
	}
}

// ---- sessions ----

var sessionStatus = map[string]string{
	"created": "active", "ended": "ended", "removed": "removed",
	"revoked": "revoked", "pending": "pending",
}

func (b *builder) session() obj {
	created := b.created()
	r := b.rng("session")
	place := pick(r, cities)
	var lastOrg any
	if r.IntN(2) == 0 {
		lastOrg = b.orgID()
	}
	uid := b.userID()
	userCreated := created.Add(-time.Duration(1+r.Int64N(300)) * day)
	return obj{
		"abandon_at":                  msOf(created.Add(30 * day)),
		"actor":                       nil,
		"client_id":                   b.newID("client_", "client"),
		"created_at":                  msOf(created),
		"expire_at":                   msOf(created.Add(7 * day)),
		"id":                          b.subjectID(),
		"last_active_at":              b.ms,
		"last_active_organization_id": lastOrg,
		"latest_activity": obj{
			"browser_name":    "Chrome",
			"browser_version": "128.0.0.0",
			"city":            place.city,
			"country":         place.country,
			"device_type":     "Macintosh",
			"id":              b.newID("sess_activity_", "activity"),
			"ip_address":      fmt.Sprintf("198.51.100.%d", 1+r.IntN(254)),
			"is_mobile":       false,
			"object":          "session_activity",
		},
		"object":     "session",
		"status":     sessionStatus[b.action],
		"updated_at": b.ms,
		"user":       b.userJSON(uid, msOf(userCreated), msOf(created), msOf(created)),
		"user_id":    uid,
	}
}

// ---- messages ----

func (b *builder) otp() string { return fmt.Sprintf("%06d", b.rng("otp").IntN(1_000_000)) }

func (b *builder) email() obj {
	p := b.person()
	code := b.otp()
	return obj{
		"body":                fmt.Sprintf("<p>Your verification code is <strong>%s</strong>.</p>", code),
		"body_plain":          fmt.Sprintf("Your verification code is %s.", code),
		"data":                obj{"app": obj{"name": "webhookd dev"}, "otp_code": code, "requested_from": "Chrome, Mac OS X"},
		"delivered_by_clerk":  true,
		"email_address_id":    p.emailIDs[p.primary],
		"from_email_name":     "notifications",
		"id":                  b.subjectID(),
		"object":              "email",
		"slug":                "verification_code",
		"status":              "queued",
		"subject":             code + " is your verification code",
		"to_email_address":    p.emails[p.primary],
		"user_id":             b.userID(),
		"suppression_reason":  nil,
		"email_template_slug": "verification_code",
	}
}

func (b *builder) sms() obj {
	p := b.person()
	code := b.otp()
	return obj{
		"data":               obj{"app": obj{"name": "webhookd dev"}, "otp_code": code},
		"delivered_by_clerk": true,
		"from_phone_number":  "+15555550100",
		"id":                 b.subjectID(),
		"message":            code + " is your verification code.",
		"object":             "sms_message",
		"phone_number_id":    p.phoneID,
		"slug":               "verification_code",
		"status":             "queued",
		"to_phone_number":    p.phone,
		"user_id":            b.userID(),
	}
}

// ---- organizations ----

func (b *builder) orgName() string { return pick(b.rng("org"), orgNames) }

func (b *builder) organization() obj {
	if b.action == "deleted" {
		return deleted(b.subjectID(), "organization")
	}
	return b.orgJSON(b.created(), b.ms)
}

func (b *builder) orgJSON(created time.Time, updated int64) obj {
	id, name := b.orgID(), b.orgName()
	return obj{
		"admin_delete_enabled":    true,
		"created_at":              msOf(created),
		"created_by":              b.userID(),
		"has_image":               false,
		"id":                      id,
		"image_url":               b.imageURL(id),
		"max_allowed_memberships": 0,
		"members_count":           1 + b.rng("members").IntN(40),
		"missing_member_with_elevated_permissions": false,
		"name":                      name,
		"object":                    "organization",
		"pending_invitations_count": 0,
		"private_metadata":          obj{},
		"public_metadata":           obj{},
		"slug":                      slugify(name),
		"updated_at":                updated,
	}
}

func (b *builder) organizationDomain() obj {
	id := b.subjectID()
	if b.action == "deleted" {
		return deleted(id, "organization_domain")
	}
	created := b.created()
	status := "verified"
	if b.action == "created" {
		status = "unverified"
	}
	return obj{
		"affiliation_email_address": nil,
		"created_at":                msOf(created),
		"enrollment_mode":           "automatic_invitation",
		"id":                        id,
		"name":                      slugify(b.orgName()) + ".example.org",
		"object":                    "organization_domain",
		"organization_id":           b.orgID(),
		"total_pending_invitations": 0,
		"total_pending_suggestions": 0,
		"updated_at":                b.ms,
		"verification":              obj{"attempts": 1, "expires_at": msOf(created.Add(day)), "status": status, "strategy": "email_code"},
	}
}

func (b *builder) organizationMembership() obj {
	p := b.person()
	uid := b.userID()
	created := b.created()
	role, roleName := "org:member", "Member"
	perms := []any{"org:sys_memberships:read"}
	if b.action == "updated" {
		role, roleName = "org:admin", "Admin"
		perms = []any{"org:sys_domains:manage", "org:sys_memberships:manage", "org:sys_memberships:read", "org:sys_profile:manage"}
	}
	return obj{
		"created_at":       msOf(created),
		"id":               b.subjectID(),
		"object":           "organization_membership",
		"organization":     b.orgJSON(created.Add(-time.Duration(1+b.rng("orgage").Int64N(500))*day), msOf(created)),
		"permissions":      perms,
		"private_metadata": obj{},
		"public_metadata":  obj{},
		"public_user_data": obj{
			"first_name":        p.first,
			"has_image":         p.hasImage,
			"identifier":        p.emails[p.primary],
			"image_url":         b.imageURL(uid),
			"last_name":         p.last,
			"profile_image_url": "https://www.gravatar.com/avatar?d=mp",
			"user_id":           uid,
		},
		"role":       role,
		"role_name":  roleName,
		"updated_at": b.ms,
	}
}

func (b *builder) organizationInvitation() obj {
	p := b.person()
	created := b.created()
	name := b.orgName()
	status := map[string]string{"created": "pending", "accepted": "accepted", "revoked": "revoked"}[b.action]
	oid := b.orgID()
	inv := obj{
		"created_at":       msOf(created),
		"email_address":    p.emails[p.primary],
		"expires_at":       msOf(created.Add(30 * day)),
		"id":               b.subjectID(),
		"object":           "organization_invitation",
		"organization_id":  oid,
		"private_metadata": obj{},
		"public_metadata":  obj{},
		"public_organization_data": obj{
			"has_image": false, "id": oid, "image_url": b.imageURL(oid),
			"name": name, "object": "organization", "slug": slugify(name),
		},
		"role":       "org:member",
		"role_name":  "Member",
		"status":     status,
		"updated_at": b.ms,
		"url":        nil,
	}
	if b.action == "accepted" {
		inv["user_id"] = b.userID()
	}
	return inv
}

// ---- roles and permissions ----

var (
	roles = []struct{ key, name, description string }{
		{"org:billing_manager", "Billing manager", "Manages invoices and the subscription."},
		{"org:clinician", "Clinician", "Sees and edits the records of assigned patients."},
		{"org:front_desk", "Front desk", "Books appointments and checks patients in."},
	}
	permissions = []struct{ key, name, description string }{
		{"org:invoices:read", "Read invoices", "Can list and open invoices."},
		{"org:invoices:manage", "Manage invoices", "Can issue and void invoices."},
		{"org:appointments:manage", "Manage appointments", "Can book, move and cancel appointments."},
		{"org:records:read", "Read records", "Can open patient records."},
	}
)

func (b *builder) permissionJSON(i int, id string, created time.Time, updated int64) obj {
	perm := permissions[i]
	return obj{
		"created_at":  msOf(created),
		"description": perm.description,
		"id":          id,
		"key":         perm.key,
		"name":        perm.name,
		"object":      "permission",
		"updated_at":  updated,
	}
}

func (b *builder) role() obj {
	r := b.rng("role")
	role := pick(r, roles)
	created := b.created()
	first := r.IntN(len(permissions) - 1)
	perms := []any{
		b.permissionJSON(first, b.newID("perm_", "perm0"), created, msOf(created)),
		b.permissionJSON(first+1, b.newID("perm_", "perm1"), created, msOf(created)),
	}
	return obj{
		"created_at":          msOf(created),
		"description":         role.description,
		"id":                  b.subjectID(),
		"is_creator_eligible": false,
		"key":                 role.key,
		"name":                role.name,
		"object":              "role",
		"permissions":         perms,
		"updated_at":          b.ms,
	}
}

func (b *builder) permission() obj {
	return b.permissionJSON(b.rng("permission").IntN(len(permissions)), b.subjectID(), b.created(), b.ms)
}

// ---- waitlist ----

func (b *builder) waitlistEntry() obj {
	p := b.person()
	created := b.created()
	entry := obj{
		"created_at":    msOf(created),
		"email_address": p.emails[p.primary],
		"id":            b.subjectID(),
		"invitation":    nil,
		"is_locked":     false,
		"object":        "waitlist_entry",
		"status":        "pending",
		"updated_at":    b.ms,
	}
	if b.action == "updated" {
		entry["status"] = "invited"
		entry["invitation"] = obj{
			"created_at":      b.ms,
			"email_address":   p.emails[p.primary],
			"id":              b.newID("inv_", "invitation"),
			"object":          "invitation",
			"public_metadata": obj{},
			"revoked":         false,
			"status":          "pending",
			"updated_at":      b.ms,
			"url":             "https://accounts.example.com/sign-up?__clerk_ticket=" + b.token("ticket", 40),
		}
	}
	return entry
}

// ---- billing ----

func money(cents int) obj {
	return obj{
		"amount":           cents,
		"amount_formatted": fmt.Sprintf("%d.%02d", cents/100, cents%100),
		"currency":         "USD",
		"currency_symbol":  "$",
	}
}

func (b *builder) instanceID() string {
	if b.o.InstanceID != "" {
		return b.o.InstanceID
	}
	return DefaultInstanceID
}

func (b *builder) payer(created time.Time) obj {
	p := b.person()
	uid := b.userID()
	return obj{
		"created_at":  msOf(created),
		"email":       p.emails[p.primary],
		"first_name":  p.first,
		"id":          b.newID("cpayer_", "payer"),
		"image_url":   b.imageURL(uid),
		"instance_id": b.instanceID(),
		"last_name":   p.last,
		"object":      "commerce_payer",
		"updated_at":  msOf(created),
		"user_id":     uid,
	}
}

var itemStatus = map[string]string{
	"created": "active", "updated": "active", "active": "active",
	"canceled": "canceled", "upcoming": "upcoming", "ended": "ended",
	"abandoned": "abandoned", "incomplete": "incomplete", "pastDue": "past_due",
	"freeTrialEnding": "active",
}

func (b *builder) itemJSON(id, status string, created time.Time) obj {
	// The current monthly period: it started at most 27 days before the
	// event, and not before the item was created.
	periodStart := b.at.Add(-time.Duration(b.rng("period").Int64N(27*24)) * time.Hour)
	if periodStart.Before(created) {
		periodStart = created
	}
	periodEnd := periodStart.AddDate(0, 1, 0)
	item := obj{
		"amount":              money(2500),
		"created_at":          msOf(created),
		"credit":              obj{"amount": money(0), "cycle_days_remaining": 30, "cycle_days_total": 30, "cycle_remaining_percent": 100},
		"id":                  id,
		"is_free_trial":       b.action == "freeTrialEnding",
		"lifetime_paid":       2500,
		"next_payment_amount": 2500,
		"next_payment_date":   msOf(periodEnd),
		"object":              "commerce_subscription_item",
		"payer":               b.payer(created),
		"period_end":          msOf(periodEnd),
		"period_start":        msOf(periodStart),
		"plan": obj{
			"amount": 2500, "annual_monthly_amount": 2000, "currency": "USD",
			"description": "For small practices.", "has_base_fee": true,
			"id": b.newID("cplan_", "plan"), "instance_id": b.instanceID(),
			"interval": 1, "is_default": false, "is_recurring": true, "name": "Pro",
			"period": "month", "product_id": b.newID("cprod_", "product"),
			"publicly_visible": true, "slug": "pro",
		},
		"plan_period":    "month",
		"proration_date": periodStart.UTC().Format(time.DateOnly),
		"status":         status,
		"updated_at":     b.ms,
	}
	item["plan_id"] = item["plan"].(obj)["id"]
	switch status {
	case "canceled", "ended":
		item["canceled_at"] = b.ms
	case "past_due":
		item["past_due_at"] = b.ms
	}
	return item
}

func (b *builder) subscriptionItem() obj {
	return b.itemJSON(b.subjectID(), itemStatus[b.action], b.created())
}

func (b *builder) subscription() obj {
	created := b.created()
	status := "active"
	if b.action == "pastDue" {
		status = "past_due"
	}
	payer := b.payer(created)
	sub := obj{
		"active_at":         msOf(created),
		"created_at":        msOf(created),
		"id":                b.subjectID(),
		"items":             []any{b.itemJSON(b.newID("csubi_", "item"), status, created)},
		"latest_payment_id": b.newID("cpay_", "payment"),
		"object":            "commerce_subscription",
		"payer":             payer,
		"payer_id":          payer["id"],
		"payment_source_id": b.newID("cps_", "source"),
		"status":            status,
		"updated_at":        b.ms,
	}
	if status == "past_due" {
		sub["past_due_at"] = b.ms
	}
	return sub
}

func (b *builder) paymentAttempt() obj {
	created := b.created()
	status := "pending"
	attempt := obj{
		"billing_date":        msOf(created),
		"charge_type":         "recurring",
		"created_at":          msOf(created),
		"gateway_external_id": "pi_" + b.token("pi", 24),
		"id":                  b.subjectID(),
		"instance_id":         b.instanceID(),
		"object":              "commerce_payment_attempt",
		"payee": obj{
			"gateway_external_id": "acct_" + b.token("acct", 16),
			"gateway_status":      "active",
			"gateway_type":        "stripe",
			"id":                  b.newID("cpayee_", "payee"),
		},
		"payer":      b.payer(created),
		"payment_id": b.newID("cpay_", "payment"),
		"payment_source": obj{
			"card_type":                   "visa",
			"gateway":                     "stripe",
			"gateway_external_account_id": "pm_" + b.token("pm", 24),
			"gateway_external_id":         "cus_" + b.token("cus", 14),
			"id":                          b.newID("cps_", "source"),
			"last4":                       "4242",
			"payment_method":              "card",
			"status":                      "active",
		},
		"statement_id":       b.newID("cstmt_", "statement"),
		"subscription_items": []any{b.itemJSON(b.newID("csubi_", "item"), "active", created)},
		"totals":             obj{"grand_total": money(2500), "subtotal": money(2500), "tax_total": money(0)},
		"updated_at":         b.ms,
	}
	if b.action == "updated" {
		status = "paid"
		attempt["paid_at"] = b.ms
	}
	attempt["status"] = status
	return attempt
}
