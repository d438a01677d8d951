package policy

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/vfio-gate/vfio-gate/internal/pemcert"
)

// ParseCertificates reads a trust-anchor file given on the command line:
// PEM with one or more CERTIFICATE blocks (other blocks are skipped), or DER
// (internal/pemcert).
func ParseCertificates(b []byte) ([]*x509.Certificate, error) { return pemcert.Parse(b) }

// ParsePublicKey reads a pre-provisioned responder public key: one PEM
// "PUBLIC KEY" block (SubjectPublicKeyInfo) or its DER.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	der := b
	if strings.Contains(string(b), "-----BEGIN") {
		blk, rest := pem.Decode(b)
		if blk == nil || blk.Type != "PUBLIC KEY" {
			return nil, errors.New("want one PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo)")
		}
		if next, _ := pem.Decode(rest); next != nil {
			return nil, errors.New("more than one PEM block; give the one key the device holds")
		}
		der = blk.Bytes
	}
	return x509.ParsePKIXPublicKey(der)
}
