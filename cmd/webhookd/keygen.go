package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/webhookd/webhookd/audit/seal"
	"golang.org/x/mod/sumdb/note"
)

// KeygenCmd prints a new checkpoint signing key pair, or a witness's.
type KeygenCmd struct {
	Origin  string `name:"origin" help:"Print the signing key in signed-note form under this log origin (what WEBHOOKD_LOG_ORIGIN would be); default: base64, origin webhookd/<key id>."`
	Witness string `name:"witness" help:"Print a witness key named NAME instead (for webhookd witness --key; its verifier key goes into WEBHOOKD_WITNESS_KEYS and verify --witness)."`
}

// Run prints WEBHOOKD_SIGNING_KEY=… on the first line and the public key
// (key id, origin, note verifier key, base64, PEM) after it; with
// --witness, the witness's private and verifier keys.
func (c KeygenCmd) Run(g *Globals) error {
	if c.Witness != "" {
		return witnessKeygen(g.stdout(), c.Witness)
	}
	return keygen(g.stdout(), c.Origin)
}

func keygen(w io.Writer, origin string) error {
	key, err := seal.GenerateKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	text := seal.EncodePrivateKey(key)
	if origin != "" {
		if err := seal.CheckOrigin(origin); err != nil {
			return fmt.Errorf("--origin: %w", err)
		}
		if text, err = seal.NoteSigningKey(origin, key); err != nil {
			return err
		}
	} else {
		origin = seal.DefaultOrigin(pub)
	}
	vkey, err := seal.VerifierKey(origin, pub)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "WEBHOOKD_SIGNING_KEY=%s\n# key id: %s\n# log origin: %s\n# note verifier key (for witnesses: webhookd witness --log-key): %s\n# public key (base64): %s\n%s",
		text, seal.KeyID(pub), origin, vkey, base64.StdEncoding.EncodeToString(pub), seal.EncodePublicKeyPEM(pub))
	return err
}

func witnessKeygen(w io.Writer, name string) error {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return fmt.Errorf("--witness: %q is not a valid key name (no spaces, no '+'): %v", name, err)
	}
	cosigV, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "WEBHOOKD_WITNESS_SIGNING_KEY=%s\n# witness verifier key (for WEBHOOKD_WITNESS_KEYS and verify --witness): %s\n", skey, cosigV)
	return err
}
