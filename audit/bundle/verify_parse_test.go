package bundle

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/webhookd/webhookd/audit/merkle"
	"github.com/webhookd/webhookd/audit/seal"
)

func TestFastDecodersAgreeWithEncodingJSON(t *testing.T) {
	t.Parallel()
	e := seal.Entry{LedgerIndex: 7, Offset: 9, LeafHash: merkle.LeafHash([]byte("x")), SvixID: "msg_1", Source: "clerk",
		SvixTimestamp: "2026-11-27T10:00:00.000000Z", Signature: "v1,a+b/c=", EventType: "user.created",
		SubjectID: "user_1", InstanceID: "ins_1", EventTime: "2026-11-27T10:00:00.000000Z", TimestampUnit: "ms",
		ReceivedAt: "2026-11-27T10:00:00.123456Z", SourceIP: "2001:db8::1", Payload: []byte(`{"name":"Zoë <z>"}`)}
	redacted := e
	RedactEntry(&redacted)
	escaped := e
	escaped.SvixID = "msg_<&>\"quoted\""
	lines := []string{mustMarshal(t, e), mustMarshal(t, redacted), mustMarshal(t, escaped),
		`{"ledger_index":7,"LEDGER_INDEX":8}`, "{\"svix_id\":\"caf\xc3\xa9\"}", "{\"svix_id\":\"bad \xff\"}", `{}`, ` { "offset" : 3 } `}
	for _, line := range lines {
		var fast, slow seal.Entry
		fastErr := decodeEntry([]byte(line), &fast)
		slowErr := json.Unmarshal([]byte(line), &slow)
		require.Equal(t, slowErr == nil, fastErr == nil, line)
		require.Equal(t, slow, fast, line)
	}
	// One decoder reused across lines, as a verify worker does: each
	// result is encoding/json's, whatever the decoder's buffers held.
	big := e
	big.Payload = []byte(strings.Repeat(`{"k":"v"}`, 1000))
	empty := e
	empty.Payload = []byte{}
	lines = append(lines, mustMarshal(t, big), mustMarshal(t, e), mustMarshal(t, empty), mustMarshal(t, big), lines[0],
		`{"svix_id":"a","svix_id":"bb","source":"clerk","svix_id":"ccc"}`,
		`{"leaf_hash":"`+strings.ToUpper(e.LeafHash.String())+`"}`,
		`{"leaf_hash":"\u0030`+e.LeafHash.String()[1:]+`"}`,
		`{"leaf_hash":"`+e.LeafHash.String()[1:]+`"}`,
		`{"leaf_hash":"`+e.LeafHash.String()+`0"}`,
		`{"leaf_hash":"`+e.LeafHash.String()[:63]+`\u0030"}`,
		`{"leaf_hash":"`+e.LeafHash.String()[:63]+`g"}`,
		`{"leaf_hash":"`+e.LeafHash.String()[:64])
	var d lineDecoder
	for _, line := range append(lines, lines...) {
		var fast, slow seal.Entry
		fastErr := d.entry([]byte(line), &fast)
		slowErr := json.Unmarshal([]byte(line), &slow)
		require.Equal(t, slowErr == nil, fastErr == nil, line)
		require.Equal(t, slow, fast, line)
	}
	for _, bad := range []string{`{"ledger_index":1}x`, `{"ledger_index":01}`, `{"payload":"!!"}`, `{"ledger_index":1,}`} {
		var e seal.Entry
		require.Error(t, decodeEntry([]byte(bad), &e), bad)
	}

	p := seal.Proof{LedgerIndex: 3, LeafHash: e.LeafHash, TreeSize: 10, Path: []merkle.Hash{e.LeafHash, {}}}
	long := p
	for range 30 {
		long.Path = append(long.Path, e.LeafHash)
	}
	proofLines := []string{mustMarshal(t, p), mustMarshal(t, seal.Proof{Path: []merkle.Hash{}}), `{"path":["00"]}`,
		mustMarshal(t, long), mustMarshal(t, p), mustMarshal(t, seal.Proof{Path: []merkle.Hash{}}), mustMarshal(t, long),
		`{"path":["` + e.LeafHash.String() + `","` + e.LeafHash.String()[:63] + `x"]}`, mustMarshal(t, p),
		`{"path":["` + e.LeafHash.String() + `",` + `"\u0030` + e.LeafHash.String()[1:] + `"]}`}
	for _, line := range proofLines[:3] {
		var fast, slow seal.Proof
		fastErr := decodeProof([]byte(line), &fast)
		slowErr := json.Unmarshal([]byte(line), &slow)
		require.Equal(t, slowErr == nil, fastErr == nil, line)
		require.Equal(t, slow, fast, line)
	}
	var d2 lineDecoder
	for _, line := range proofLines {
		var fast, slow seal.Proof
		fastErr := d2.proof([]byte(line), &fast)
		slowErr := json.Unmarshal([]byte(line), &slow)
		require.Equal(t, slowErr == nil, fastErr == nil, line)
		require.Equal(t, slow, fast, line)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestNodeHashIsMerkleNodeHash(t *testing.T) {
	t.Parallel()
	a, b := merkle.LeafHash([]byte("a")), merkle.LeafHash([]byte("b"))
	for _, pair := range [][2]merkle.Hash{{a, b}, {b, a}, {a, a}, {{}, {}}} {
		require.Equal(t, merkle.NodeHash(pair[0], pair[1]), nodeHash(pair[0], pair[1]))
	}
}

// Every byte encoding/json refuses or decodes differently in a string, at
// every position of an eight-byte word, sends a line to encoding/json.
func TestFastDecoderFindsEveryUnusualByte(t *testing.T) {
	t.Parallel()
	var d lineDecoder
	for _, c := range []byte{0x00, 0x01, '\n', '\r', 0x1f, '\\', 0x7f, 0x80, 0xc3, 0xff, '\t'} {
		for pos := range 20 {
			b := []byte(strings.Repeat("m", 20))
			b[pos] = c
			for _, line := range []string{`{"svix_id":"` + string(b) + `"}`, `{"payload":"` + string(b) + `"}`} {
				var fast, slow seal.Entry
				fastErr := d.entry([]byte(line), &fast)
				slowErr := json.Unmarshal([]byte(line), &slow)
				require.Equal(t, slowErr == nil, fastErr == nil, line)
				require.Equal(t, slow, fast, line)
			}
		}
	}
}
