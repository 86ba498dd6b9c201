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
	if json.Valid(data) {
		if start := skipSpace(data, 0); data[start] == '{' {
			var t orgTokens
			if _, _, ok := readData(data, start, orgMembers[:], t[:]); ok {
				if o, ok := t.organization(fallback); ok {
					return o, nil
				}
			}
		}
	}
	return decodeOrganization(data, fallback)
}

// ParseOrganizationEvent reads the organization of an organization.created
// or organization.updated event: it is ParseOrganization(env.Data,
// env.Time) for env, err := ParseEnvelope(body), with the same results and
// errors, but it checks and walks body once.
func ParseOrganizationEvent(body []byte) (Organization, error) {
	var t orgTokens
	if env, ok := readPlainEnvelope(body, orgMembers[:], t[:]); ok {
		if o, ok := t.organization(env.Time); ok {
			return o, nil
		}
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		return Organization{}, err
	}
	return ParseOrganization(env.Data, env.Time)
}

// orgMembers are the members of a Clerk organization object that
// ParseOrganization reads, numbered as orgTokens holds them ("id" first,
// as readData wants).
var orgMembers = [...]string{"id", "name", "slug", "image_url", "created_at", "updated_at"}

const (
	orgID = iota
	orgName
	orgSlug
	orgImageURL
	orgCreatedAt
	orgUpdatedAt
)

// orgTokens holds the raw JSON values of orgMembers in an organization
// object, nil for those it lacks.
type orgTokens [len(orgMembers)][]byte

// organization is decodeOrganization's reading of t, or ok false where
// decodeOrganization might read it otherwise or reject it: it then
// decides, and gives every error.
func (t *orgTokens) organization(fallback time.Time) (o Organization, ok bool) {
	id, ok := stringBytes(t[orgID])
	if !ok || len(id) == 0 {
		return Organization{}, false
	}
	name, ok1 := optionalString(t[orgName])
	slug, ok2 := optionalString(t[orgSlug])
	image, ok3 := optionalString(t[orgImageURL])
	created, ok4 := optionalMillis(t[orgCreatedAt], fallback)
	updated, ok5 := optionalMillis(t[orgUpdatedAt], fallback)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return Organization{}, false
	}
	return Organization{ClerkID: string(id), Name: name, Slug: slug, ImageURL: image, CreatedAt: created, UpdatedAt: updated}, true
}

// decodeOrganization is ParseOrganization read member by member with
// objectMembers (exact names, the last of duplicated names wins, as jsonb
// reads them): the reference, which decides every organization object
// orgTokens.organization does not read plainly, and gives every error.
func decodeOrganization(data json.RawMessage, fallback time.Time) (Organization, error) {
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
	if json.Valid(data) {
		if start := skipSpace(data, 0); data[start] == '{' {
			var t membershipTokens
			if _, _, ok := readData(data, start, membershipMembers[:], t[:]); ok {
				if m, ok := t.membership(fallback); ok {
					return m, nil
				}
			}
		}
	}
	return decodeMembership(data, fallback)
}

// ParseMembershipEvent reads the membership of an organizationMembership.*
// event: it is ParseMembership(env.Data, env.Time) for env, err :=
// ParseEnvelope(body), with the same results and errors, but it checks and
// walks body once.
func ParseMembershipEvent(body []byte) (Membership, error) {
	var t membershipTokens
	if env, ok := readPlainEnvelope(body, membershipMembers[:], t[:]); ok {
		if m, ok := t.membership(env.Time); ok {
			return m, nil
		}
	}
	env, err := ParseEnvelope(body)
	if err != nil {
		return Membership{}, err
	}
	return ParseMembership(env.Data, env.Time)
}

// membershipMembers are the members of a Clerk organization membership
// object that ParseMembership reads, numbered as membershipTokens holds
// them ("id" first, as readData wants).
var membershipMembers = [...]string{"id", "object", "role", "organization", "public_user_data", "created_at", "updated_at"}

const (
	membershipID = iota
	membershipObject
	membershipRole
	membershipOrganization
	membershipPublicUserData
	membershipCreatedAt
	membershipUpdatedAt
)

// membershipTokens holds the raw JSON values of membershipMembers in a
// membership object, nil for those it lacks.
type membershipTokens [len(membershipMembers)][]byte

// membership is decodeMembership's reading of t, or ok false where
// decodeMembership might read it otherwise or reject it: it then decides,
// and gives every error.
func (t *membershipTokens) membership(fallback time.Time) (m Membership, ok bool) {
	id, ok := stringBytes(t[membershipID])
	if !ok || len(id) == 0 {
		return Membership{}, false
	}
	object, ok := optionalStringBytes(t[membershipObject])
	if !ok {
		return Membership{}, false
	}
	if string(object) != "organization_membership" {
		return Membership{ClerkID: string(id)}, true
	}
	role, ok1 := optionalString(t[membershipRole])
	orgID, ok2 := plainNestedString(t[membershipOrganization], "id")
	userID, ok3 := plainNestedString(t[membershipPublicUserData], "user_id")
	created, ok4 := optionalMillis(t[membershipCreatedAt], fallback)
	updated, ok5 := optionalMillis(t[membershipUpdatedAt], fallback)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return Membership{}, false
	}
	return Membership{ClerkID: string(id), OrgID: orgID, UserID: userID, Role: role,
		CreatedAt: created, UpdatedAt: updated, Profile: true}, true
}

// plainNestedString is nestedString in the single pass: tok[name] where
// tok must be an object (or absent or null, which reads as ""). ok is
// false for anything nestedString might read otherwise or reject: another
// kind of value, a duplicated name or an escaped one.
func plainNestedString(tok []byte, name string) (string, bool) {
	if tok == nil || string(tok) == "null" {
		return "", true
	}
	if tok[0] != '{' {
		return "", false
	}
	names := []string{name}
	var value []byte
	seen := false
	obj := objectReader{b: tok}
	for {
		key, more := obj.next()
		if !more {
			break
		}
		n, plain := memberIndex(key, names)
		if !plain || n == 0 && seen {
			return "", false
		}
		if n < 0 {
			obj.skipValue()
			continue
		}
		seen = true
		value = obj.value()
	}
	return optionalString(value)
}

// decodeMembership is ParseMembership read member by member with
// objectMembers (exact names, the last of duplicated names wins, as jsonb
// reads them): the reference, which decides every membership object
// membershipTokens.membership does not read plainly, and gives every error.
func decodeMembership(data json.RawMessage, fallback time.Time) (Membership, error) {
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
