package domain

// The json.Unmarshal readers that the single-pass ones fall back to, for
// the tests that hold the two to the same results and errors. They are the
// code ParseEnvelope and ParseUser were before the single pass, unchanged;
// the exact-message tests pin what they answer.
var (
	DecodeEnvelope = decodeEnvelope
	DecodeUser     = decodeUser
)
