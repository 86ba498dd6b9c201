package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/webhookd/webhookd/audit/merkle"
)

// checkpointTag starts every signed checkpoint message.
const checkpointTag = "webhookd-checkpoint-v1"

// Checkpoint is a signed tree head: the ledger's Merkle tree had TreeSize
// leaves with root RootHash at SignedAt, says the holder of PublicKey.
type Checkpoint struct {
	TreeSize uint64      `json:"tree_size"`
	RootHash merkle.Hash `json:"root_hash"`
	// SignedAt has microsecond precision, as PostgreSQL keeps it.
	SignedAt time.Time `json:"signed_at"`
	// KeyID is KeyID(PublicKey).
	KeyID     string            `json:"key_id"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	// Signature is Ed25519 over SignedMessage().
	Signature []byte `json:"signature"`
	// Origin names the log in Note (see DefaultOrigin); empty for
	// checkpoints signed before checkpoints were notes.
	Origin string `json:"origin,omitempty"`
	// Note is the same checkpoint as a C2SP tlog-checkpoint signed note by
	// the same key under the name Origin, with the log's signature only
	// (witness cosignatures are kept apart, see Cosignature).
	Note string `json:"note,omitempty"`
}

// SignedMessage returns the bytes the checkpoint's signature covers, four
// lines each ending in "\n":
//
//	webhookd-checkpoint-v1
//	<tree size, decimal>
//	<root hash, 64 lowercase hex digits>
//	<signed at, TimeLayout>
func (c Checkpoint) SignedMessage() []byte {
	return []byte(checkpointTag + "\n" + strconv.FormatUint(c.TreeSize, 10) + "\n" +
		c.RootHash.String() + "\n" + FormatTime(c.SignedAt) + "\n")
}

// SignCheckpoint signs {size, root, at} with key under DefaultOrigin (see
// SignCheckpointAs).
func SignCheckpoint(key ed25519.PrivateKey, size uint64, root merkle.Hash, at time.Time) Checkpoint {
	return SignCheckpointAs(LogKey{Key: key, Origin: DefaultOrigin(key.Public().(ed25519.PublicKey))}, size, root, at)
}

// SignCheckpointAs signs {size, root, at} with k.Key, both as webhookd's
// checkpoint message (SignedMessage) and as a signed note under k.Origin;
// at is truncated to microseconds.
func SignCheckpointAs(k LogKey, size uint64, root merkle.Hash, at time.Time) Checkpoint {
	key := k.Key
	pub := key.Public().(ed25519.PublicKey)
	c := Checkpoint{
		TreeSize:  size,
		RootHash:  root,
		SignedAt:  at.UTC().Truncate(time.Microsecond),
		KeyID:     KeyID(pub),
		PublicKey: pub,
	}
	c.Signature = ed25519.Sign(key, c.SignedMessage())
	signed, err := signNote(key, k.Origin, size, root)
	if err != nil {
		panic(err) // only for an origin ParseLogKey refuses
	}
	c.Origin, c.Note = k.Origin, signed
	return c
}

// VerifySignature checks the signature with the checkpoint's own public key
// and, when trusted is not empty, that this key is one of them, and that
// the signed note (when there is one) is signed by the same key and says
// the same tree size and root. It does not look at the tree.
func (c Checkpoint) VerifySignature(trusted ...ed25519.PublicKey) error {
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("checkpoint of tree size %d: public key has %d bytes, want %d", c.TreeSize, len(c.PublicKey), ed25519.PublicKeySize)
	}
	if c.KeyID != KeyID(c.PublicKey) {
		return fmt.Errorf("checkpoint of tree size %d: key id %s does not belong to its public key (%s)", c.TreeSize, c.KeyID, KeyID(c.PublicKey))
	}
	if len(trusted) > 0 {
		ok := false
		for _, k := range trusted {
			ok = ok || bytes.Equal(k, c.PublicKey)
		}
		if !ok {
			return fmt.Errorf("checkpoint of tree size %d is signed by key %s, which is not a trusted key", c.TreeSize, c.KeyID)
		}
	}
	if !ed25519.Verify(c.PublicKey, c.SignedMessage(), c.Signature) {
		return fmt.Errorf("checkpoint of tree size %d: signature does not verify with key %s", c.TreeSize, c.KeyID)
	}
	if c.Note != "" || c.Origin != "" {
		return c.verifyNote()
	}
	return nil
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey returns a new Ed25519 signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	return key, err
}

// EncodePrivateKey writes key as WEBHOOKD_SIGNING_KEY takes it: the
// standard base64 of its 32-byte seed.
func EncodePrivateKey(key ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(key.Seed())
}

// EncodePublicKeyPEM writes pub as a PEM "PUBLIC KEY" block (PKIX), which
// openssl and most libraries read.
func EncodePublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // cannot fail for an ed25519.PublicKey
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a public key written as a PEM "PUBLIC KEY" block or
// as the standard base64 of its 32 bytes.
func ParsePublicKey(text []byte) (ed25519.PublicKey, error) {
	text = bytes.TrimSpace(text)
	if block, _ := pem.Decode(text); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("public key: not an Ed25519 key")
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("public key: want a PEM PUBLIC KEY block or the base64 of 32 bytes")
	}
	return ed25519.PublicKey(raw), nil
}

// ParseSigningKey reads WEBHOOKD_SIGNING_KEY: either the key itself, as the
// standard base64 of a 32-byte Ed25519 seed (what `webhookd keygen` prints)
// or of a 64-byte private key, or the path of a file holding that base64 or
// a PEM "PRIVATE KEY" block (PKCS #8, as `openssl genpkey -algorithm
// ed25519` writes). Errors never quote the value.
func ParseSigningKey(value string) (ed25519.PrivateKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("WEBHOOKD_SIGNING_KEY is empty")
	}
	if key, ok := keyFromBase64(value); ok {
		return key, nil
	}
	data, err := readKeyFile(value)
	if err != nil {
		return nil, errors.New("WEBHOOKD_SIGNING_KEY is neither the base64 of an Ed25519 key nor a readable key file")
	}
	if block, _ := pem.Decode(data); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("WEBHOOKD_SIGNING_KEY file: PEM block is not a PKCS #8 private key")
		}
		key, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, errors.New("WEBHOOKD_SIGNING_KEY file: not an Ed25519 key")
		}
		return key, nil
	}
	if key, ok := keyFromBase64(string(data)); ok {
		return key, nil
	}
	return nil, errors.New("WEBHOOKD_SIGNING_KEY file holds neither a PEM private key nor the base64 of an Ed25519 key")
}

func keyFromBase64(s string) (ed25519.PrivateKey, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), true
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(key, raw) {
			return nil, false
		}
		return key, true
	}
	return nil, false
}

// ParseTrustFile reads a trust file: the public keys a verifier accepts
// checkpoints from. Each key is either one line holding the standard
// base64 of its 32 bytes (what `webhookd keygen` prints as "public key
// (base64)") or a PEM "PUBLIC KEY" block; a # starts a comment that runs
// to the end of its line, and blank lines are ignored. A file with no key
// is an error, as is any line that is not a key; errors name the line.
func ParseTrustFile(text []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	lines := strings.Split(string(text), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" {
			continue
		}
		first := i + 1
		if strings.HasPrefix(line, "-----BEGIN ") {
			block := []string{line}
			for i++; i < len(lines); i++ {
				block = append(block, strings.TrimSpace(lines[i]))
				if strings.HasPrefix(block[len(block)-1], "-----END ") {
					break
				}
			}
			line = strings.Join(block, "\n")
		}
		k, err := ParsePublicKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", first, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no public key")
	}
	return keys, nil
}

func readKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	return bytes.TrimSpace(data), err
}
