package domain

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A small reader for JSON that json.Valid has already accepted: it walks
// objects and arrays member by member without reflection, for the single
// pass of readPlainEnvelope and ParseUserEvent. It never decides what is
// valid JSON; on anything it does not read plainly it reports so, and the
// callers fall back to encoding/json.

// objectReader reads the members of a JSON object.
type objectReader struct {
	b []byte
	// i is the index of the object's '{' before the first call of next,
	// then that of the value of the member next returned, then the index
	// just past that value once value or skipValue has read it.
	i int
}

// next returns the name of the next member, still escaped, and leaves i
// at its value; ok is false, and i just past the object, at the end.
func (r *objectReader) next() (key []byte, ok bool) {
	i := skipSpace(r.b, r.i)
	if r.b[i] == '}' {
		r.i = i + 1
		return nil, false
	}
	i = skipSpace(r.b, i+1) // past '{' or ','
	if r.b[i] == '}' {
		r.i = i + 1
		return nil, false
	}
	end := endOfString(r.b, i)
	key = r.b[i+1 : end-1]
	i = skipSpace(r.b, end) // at ':'
	r.i = skipSpace(r.b, i+1)
	return key, true
}

// value returns the current member's value.
func (r *objectReader) value() []byte {
	start := r.i
	r.i = skipValue(r.b, start)
	return r.b[start:r.i]
}

// skipValue steps over the current member's value.
func (r *objectReader) skipValue() { r.i = skipValue(r.b, r.i) }

// arrayReader reads the elements of a JSON array.
type arrayReader struct {
	b []byte
	// i is the index of the array's '[' before the first call of next,
	// then that of the element next found; the caller sets it just past
	// that element before calling next again.
	i int
}

// next reports whether there is another element, and leaves i at it.
func (r *arrayReader) next() bool {
	i := skipSpace(r.b, r.i)
	if r.b[i] == ']' {
		r.i = i + 1
		return false
	}
	i = skipSpace(r.b, i+1) // past '[' or ','
	if r.b[i] == ']' {
		r.i = i + 1
		return false
	}
	r.i = i
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
			i++
		}
		return i
	}
}

// endOfString returns the index just past the string that starts at b[i].
func endOfString(b []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return len(b)
		}
		q := j + k
		backslashes := 0
		for p := q - 1; b[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// memberIndex returns the index of key in names, or -1 if it is none of
// them; names are compared exactly, byte for byte, as the JSON spec and
// jsonb compare them ("TYPE" is another member than "type"). plain is false
// when key holds an escape: it might unescape to one of names ("d\u0061ta"
// is "data"), and the caller leaves such objects to the reference reader.
func memberIndex(key []byte, names []string) (n int, plain bool) {
	if bytes.IndexByte(key, '\\') >= 0 {
		return -1, false
	}
	for n, name := range names {
		if string(key) == name {
			return n, true
		}
	}
	return -1, true
}

// stringBytes returns the text of tok, a JSON string, as encoding/json
// decodes it (unescaped, invalid UTF-8 replaced by U+FFFD). ok is false
// when tok is not a string. A string with neither escapes nor invalid UTF-8
// is its own text and costs no copy.
func stringBytes(tok []byte) (text []byte, ok bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return nil, false
	}
	text = tok[1 : len(tok)-1]
	if bytes.IndexByte(text, '\\') < 0 && utf8.Valid(text) {
		return text, true
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// plainString is stringBytes as a string.
func plainString(tok []byte) (string, bool) {
	text, ok := stringBytes(tok)
	return string(text), ok
}

// plainPositiveInt reads tok when it is a positive integer of at most 18
// digits, which cannot overflow an int64; ok is false for any other value.
func plainPositiveInt(tok []byte) (v int64, ok bool) {
	if len(tok) == 0 || len(tok) > 18 {
		return 0, false
	}
	for _, c := range tok {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v > 0
}
