package policy

import (
	"crypto"
	"crypto/x509"
)

// MaxCertFile caps a certificate or public-key file given on the command
// line (a bundle of a few hundred certificates fits).
const MaxCertFile = 4 << 20

// ReadCertificates reads a trust-anchor file given on the command line
// (ReadRegularFile, at most MaxCertFile bytes) and parses it
// (ParseCertificates: PEM CERTIFICATE blocks, or DER).
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := ReadRegularFile(path, MaxCertFile)
	if err != nil {
		return nil, err
	}
	return ParseCertificates(b)
}

// ReadPublicKey reads a pre-provisioned responder public key file
// (ReadRegularFile, at most MaxCertFile bytes; ParsePublicKey: one PEM
// "PUBLIC KEY" block or its DER).
func ReadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := ReadRegularFile(path, MaxCertFile)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(b)
}
