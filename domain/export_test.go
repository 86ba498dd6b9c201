package domain

// The reference readers that the single-pass ones fall back to (member by
// member, by exact name, the last of duplicated names winning, as jsonb
// reads), for the tests that hold the two to the same results and errors;
// the exact-message tests pin what they answer, and the jsonb tests hold
// them to PostgreSQL's reading.
var (
	DecodeEnvelope = decodeEnvelope
	DecodeUser     = decodeUser
	// DecodeOrganization and DecodeMembership are the references of
	// ParseOrganization and ParseMembership.
	DecodeOrganization = decodeOrganization
	DecodeMembership   = decodeMembership
)
