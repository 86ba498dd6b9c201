package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
)

// The bundle lines webhookd writes are flat JSON objects of strings and
// numbers. decodeEntry and decodeProof read that shape directly, several
// times faster than encoding/json (a 1,000,000-entry bundle is gigabytes),
// and hand anything else (escapes, redacted payloads, unknown keys, bad
// syntax) to encoding/json, so the result is always what encoding/json
// would decode.

var errSlowPath = errors.New("not the fast shape")

func decodeEntry(line []byte, e *seal.Entry) error {
	var d lineDecoder
	return d.entry(line, e)
}

func decodeProof(line []byte, p *seal.Proof) error {
	var d lineDecoder
	return d.proof(line, p)
}

// lineDecoder decodes lines on one goroutine, reusing its buffers: the
// payload and path it decodes are only valid until its next call. The
// entries it decodes share one string for their text fields.
type lineDecoder struct {
	payload []byte
	path    []merkle.Hash
	texts   [16]textField
}

// textField is a text value found on the fast path, set once the whole
// line has parsed.
type textField struct {
	dst *string
	v   []byte
}

func (d *lineDecoder) entry(line []byte, e *seal.Entry) error {
	if err := d.fastEntry(line, e); err != nil {
		*e = seal.Entry{}
		return json.Unmarshal(line, e)
	}
	return nil
}

func (d *lineDecoder) proof(line []byte, p *seal.Proof) error {
	if err := d.fastProof(line, p); err != nil {
		*p = seal.Proof{}
		return json.Unmarshal(line, p)
	}
	return nil
}

// flatScanner walks {"key":value,...} where values are strings without
// escapes, unsigned integers, booleans or arrays of such strings.
type flatScanner struct {
	b []byte
	i int
}

func (s *flatScanner) skipSpace() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\r' || s.b[s.i] == '\n') {
		s.i++
	}
}

func (s *flatScanner) expect(c byte) bool {
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string with no backslash and no control characters.
func (s *flatScanner) str() ([]byte, bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	j := bytes.IndexByte(s.b[start:], '"')
	if j < 0 {
		return nil, false
	}
	v := s.b[start : start+j]
	// Eight bytes at a time while none can be a backslash, a control
	// character or non-ASCII (the test has no false negatives; a word it
	// flags is looked at byte by byte below).
	k := 0
	for ; k+8 <= len(v); k += 8 {
		x := binary.LittleEndian.Uint64(v[k:])
		bs := x ^ (0x0101010101010101 * '\\')
		if (x|(x-0x0101010101010101*0x20)|(bs-0x0101010101010101)&^bs)&0x8080808080808080 != 0 {
			break
		}
	}
	for i, c := range v[k:] {
		if c < 0x20 || c == '\\' || c >= 0x80 {
			// Rare: look at the rest closely.
			ascii := true
			for _, c := range v[k+i:] {
				if c == '\\' || c < 0x20 {
					return nil, false
				}
				ascii = ascii && c < 0x80
			}
			if !ascii && !utf8.Valid(v) {
				return nil, false // encoding/json would replace the bad bytes
			}
			break
		}
	}
	s.i = start + j + 1
	return v, true
}

func (s *flatScanner) uint() (uint64, bool) {
	s.skipSpace()
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == start || (s.b[start] == '0' && s.i-start > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.b[start:s.i]), 10, 64)
	return n, err == nil
}

// object calls field for each key; field reads the value.
func (s *flatScanner) object(field func(key []byte) bool) bool {
	if !s.expect('{') {
		return false
	}
	if s.expect('}') {
		return s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.expect(':') || !field(key) {
			return false
		}
		if s.expect(',') {
			continue
		}
		return s.expect('}') && s.end()
	}
}

func (s *flatScanner) end() bool {
	s.skipSpace()
	return s.i == len(s.b)
}

// hash reads a string of exactly 64 hex digits. hex.Decode accepts none
// of the bytes str refuses (quote, backslash, control, non-ASCII), so the
// string needs no other scan.
func (s *flatScanner) hash(h *merkle.Hash) bool {
	if !s.expect('"') {
		return false
	}
	end := s.i + 2*merkle.HashSize
	if end >= len(s.b) || s.b[end] != '"' {
		return false
	}
	if _, err := hex.Decode(h[:], s.b[s.i:end]); err != nil {
		return false
	}
	s.i = end + 1
	return true
}

func (d *lineDecoder) fastEntry(line []byte, e *seal.Entry) error {
	s := flatScanner{b: line}
	texts := d.texts[:0]
	text := func(dst *string) bool {
		v, ok := s.str()
		if !ok || len(texts) == cap(texts) {
			return false
		}
		texts = append(texts, textField{dst: dst, v: v})
		return ok
	}
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "ledger_index":
			var ok bool
			e.LedgerIndex, ok = s.uint()
			return ok
		case "offset":
			n, ok := s.uint()
			e.Offset = int64(n)
			return ok && n <= 1<<63-1
		case "leaf_hash":
			return s.hash(&e.LeafHash)
		case "svix_id":
			return text(&e.SvixID)
		case "source":
			return text(&e.Source)
		case "svix_timestamp":
			return text(&e.SvixTimestamp)
		case "signature":
			return text(&e.Signature)
		case "event_type":
			return text(&e.EventType)
		case "subject_id":
			return text(&e.SubjectID)
		case "instance_id":
			return text(&e.InstanceID)
		case "event_time":
			return text(&e.EventTime)
		case "timestamp_unit":
			return text(&e.TimestampUnit)
		case "received_at":
			return text(&e.ReceivedAt)
		case "source_ip":
			return text(&e.SourceIP)
		case "payload":
			v, ok := s.str()
			if !ok {
				return false
			}
			if n := base64.StdEncoding.DecodedLen(len(v)); d.payload == nil || cap(d.payload) < n {
				d.payload = make([]byte, n, max(n, 4096))
			}
			n, err := base64.StdEncoding.Decode(d.payload[:cap(d.payload)], v)
			e.Payload = d.payload[:n]
			return err == nil
		}
		return false // redacted entries and anything unexpected
	})
	if !ok {
		return errSlowPath
	}
	// One string holds every text field (later keys win, as in
	// encoding/json).
	n := 0
	for _, t := range texts {
		n += len(t.v)
	}
	var all strings.Builder
	all.Grow(n)
	for _, t := range texts {
		all.Write(t.v)
	}
	str, at := all.String(), 0
	for _, t := range texts {
		*t.dst = str[at : at+len(t.v)]
		at += len(t.v)
	}
	return nil
}

func (d *lineDecoder) fastProof(line []byte, p *seal.Proof) error {
	s := flatScanner{b: line}
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "ledger_index":
			var ok bool
			p.LedgerIndex, ok = s.uint()
			return ok
		case "tree_size":
			var ok bool
			p.TreeSize, ok = s.uint()
			return ok
		case "leaf_hash":
			return s.hash(&p.LeafHash)
		case "path":
			if !s.expect('[') {
				return false
			}
			if d.path == nil {
				d.path = make([]merkle.Hash, 0, 64)
			}
			p.Path = d.path[:0]
			if s.expect(']') {
				return true
			}
			for {
				var h merkle.Hash
				if !s.hash(&h) {
					return false
				}
				p.Path = append(p.Path, h)
				d.path = p.Path[:0]
				if s.expect(',') {
					continue
				}
				return s.expect(']')
			}
		}
		return false
	})
	if !ok {
		return errSlowPath
	}
	return nil
}
