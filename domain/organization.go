package domain

import (
	"encoding/json"
	"time"
)

// Event types the practices and memberships read models apply. Clerk
// models a practice as an organization, and a person's place in it as an
// organization membership.
const (
	EventOrganizationCreated = "organization.created"
	EventOrganizationUpdated = "organization.updated"
	EventOrganizationDeleted = "organization.deleted"
	EventMembershipCreated   = "organizationMembership.created"
	EventMembershipUpdated   = "organizationMembership.updated"
	EventMembershipDeleted   = "organizationMembership.deleted"
)

// Organization is what the practices read model takes from a Clerk
// organization object.
type Organization struct {
	ClerkID  string
	Name     string
	Slug     string
	ImageURL string
	// CreatedAt and UpdatedAt are Clerk's; UpdatedAt is the ordering key.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ParseOrganization reads the data of an organization.created or
// organization.updated event by exact member names (as jsonb reads them).
// fallback is used for created_at and updated_at when Clerk left them out
// or they are outside the years 1 to 9999: the event's own time.
func ParseOrganization(data json.RawMessage, fallback time.Time) (Organization, error) {
	members, err := objectMembers(data)
	if err != nil || members == nil {
		return Organization{}, notObject("organization", data, err)
	}
	var text [4]string
	for i, name := range []string{"id", "name", "slug", "image_url"} {
		var ok bool
		if text[i], _, ok = stringMember(members[name]); !ok {
			return Organization{}, notField("organization", name, "a string")
		}
	}
	if text[0] == "" {
		return Organization{}, Errorf(EINVALID, "not_clerk_organization", "data.id is empty")
	}
	o := Organization{ClerkID: text[0], Name: text[1], Slug: text[2], ImageURL: text[3]}
	var ok bool
	if o.CreatedAt, ok = millisMember(members["created_at"], fallback); !ok {
		return Organization{}, notField("organization", "created_at", "an integer (unix milliseconds)")
	}
	if o.UpdatedAt, ok = millisMember(members["updated_at"], fallback); !ok {
		return Organization{}, notField("organization", "updated_at", "an integer (unix milliseconds)")
	}
	return o, nil
}

// Membership is what the memberships read model takes from a Clerk
// organization membership object.
type Membership struct {
	ClerkID string
	// OrgID is organization.id; UserID is public_user_data.user_id. Empty
	// when the object does not carry them.
	OrgID  string
	UserID string
	// Role is Clerk's role key, e.g. "org:admin".
	Role      string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Profile is false for a bare deletion marker ({"deleted":true,"id":…}):
	// it names the membership and says nothing else.
	Profile bool
}

// ParseMembership reads the data of an organizationMembership.* event by
// exact member names. A deletion marker without the membership's fields
// ({"deleted":true,"id":…,"object":…}) reads with Profile false; Clerk's
// organizationMembership.deleted carries the whole membership.
func ParseMembership(data json.RawMessage, fallback time.Time) (Membership, error) {
	members, err := objectMembers(data)
	if err != nil || members == nil {
		return Membership{}, notObject("organization membership", data, err)
	}
	id, _, ok := stringMember(members["id"])
	if !ok {
		return Membership{}, notField("organization membership", "id", "a string")
	}
	if id == "" {
		return Membership{}, Errorf(EINVALID, "not_clerk_membership", "data.id is empty")
	}
	m := Membership{ClerkID: id}
	object, _, ok := stringMember(members["object"])
	if !ok {
		return Membership{}, notField("organization membership", "object", "a string")
	}
	if object != "organization_membership" {
		return m, nil
	}
	m.Profile = true
	if m.Role, _, ok = stringMember(members["role"]); !ok {
		return Membership{}, notField("organization membership", "role", "a string")
	}
	if m.OrgID, ok = nestedString(members["organization"], "id"); !ok {
		return Membership{}, notField("organization membership", "organization", "an object with a string id")
	}
	if m.UserID, ok = nestedString(members["public_user_data"], "user_id"); !ok {
		return Membership{}, notField("organization membership", "public_user_data", "an object with a string user_id")
	}
	if m.CreatedAt, ok = millisMember(members["created_at"], fallback); !ok {
		return Membership{}, notField("organization membership", "created_at", "an integer (unix milliseconds)")
	}
	if m.UpdatedAt, ok = millisMember(members["updated_at"], fallback); !ok {
		return Membership{}, notField("organization membership", "updated_at", "an integer (unix milliseconds)")
	}
	return m, nil
}

// nestedString reads obj[name] where obj must be an object (or absent or
// null, which reads as "").
func nestedString(obj json.RawMessage, name string) (string, bool) {
	if isNullOrAbsent(obj) {
		return "", true
	}
	if jsonKindOf(obj) != "object" {
		return "", false
	}
	members, err := objectMembers(obj)
	if err != nil {
		return "", false
	}
	s, _, ok := stringMember(members[name])
	return s, ok
}

func notObject(what string, data json.RawMessage, err error) *Error {
	reason := "not_clerk_" + map[string]string{"organization": "organization", "organization membership": "membership"}[what]
	if err != nil {
		return Errorf(EINVALID, reason, "data is not a Clerk %s object: %s", what, describeJSONError(err))
	}
	return Errorf(EINVALID, reason, "data is not a Clerk %s object: it is %s", what, jsonKindOf(data))
}

func notField(what, field, kind string) *Error {
	reason := "not_clerk_" + map[string]string{"organization": "organization", "organization membership": "membership"}[what]
	return Errorf(EINVALID, reason, "data is not a Clerk %s object: field %q must be %s", what, field, kind)
}
