package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/webhookd/webhookd/audit"
)

// KeygenCmd prints a new checkpoint signing key pair.
type KeygenCmd struct{}

// Run prints WEBHOOKD_SIGNING_KEY=<base64 seed> on the first line and the
// public key (key id, base64, PEM) after it.
func (KeygenCmd) Run(g *Globals) error { return keygen(g.stdout()) }

func keygen(w io.Writer) error {
	key, err := audit.GenerateKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	_, err = fmt.Fprintf(w, "WEBHOOKD_SIGNING_KEY=%s\n# key id: %s\n# public key (base64): %s\n%s",
		audit.EncodePrivateKey(key), audit.KeyID(pub), base64.StdEncoding.EncodeToString(pub), audit.EncodePublicKeyPEM(pub))
	return err
}
