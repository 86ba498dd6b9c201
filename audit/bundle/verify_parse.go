package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
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
	if err := fastEntry(line, e); err != nil {
		*e = seal.Entry{}
		return json.Unmarshal(line, e)
	}
	return nil
}

func decodeProof(line []byte, p *seal.Proof) error {
	if err := fastProof(line, p); err != nil {
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
	ascii := true
	for _, c := range v {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		ascii = ascii && c < 0x80
	}
	if !ascii && !utf8.Valid(v) {
		return nil, false // encoding/json would replace the bad bytes
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

func (s *flatScanner) hash(h *merkle.Hash) bool {
	v, ok := s.str()
	if !ok || len(v) != 2*merkle.HashSize {
		return false
	}
	_, err := hex.Decode(h[:], v)
	return err == nil
}

func (s *flatScanner) text(dst *string) bool {
	v, ok := s.str()
	if ok {
		*dst = string(v)
	}
	return ok
}

func fastEntry(line []byte, e *seal.Entry) error {
	s := flatScanner{b: line}
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
			return s.text(&e.SvixID)
		case "source":
			return s.text(&e.Source)
		case "svix_timestamp":
			return s.text(&e.SvixTimestamp)
		case "signature":
			return s.text(&e.Signature)
		case "event_type":
			return s.text(&e.EventType)
		case "subject_id":
			return s.text(&e.SubjectID)
		case "instance_id":
			return s.text(&e.InstanceID)
		case "event_time":
			return s.text(&e.EventTime)
		case "timestamp_unit":
			return s.text(&e.TimestampUnit)
		case "received_at":
			return s.text(&e.ReceivedAt)
		case "source_ip":
			return s.text(&e.SourceIP)
		case "payload":
			v, ok := s.str()
			if !ok {
				return false
			}
			e.Payload = make([]byte, base64.StdEncoding.DecodedLen(len(v)))
			n, err := base64.StdEncoding.Decode(e.Payload, v)
			e.Payload = e.Payload[:n]
			return err == nil
		}
		return false // redacted entries and anything unexpected
	})
	if !ok {
		return errSlowPath
	}
	return nil
}

func fastProof(line []byte, p *seal.Proof) error {
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
			p.Path = make([]merkle.Hash, 0, 64)
			if s.expect(']') {
				return true
			}
			for {
				var h merkle.Hash
				if !s.hash(&h) {
					return false
				}
				p.Path = append(p.Path, h)
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
