package policy

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParseCertificates reads a trust-anchor file given on the command line:
// PEM with one or more CERTIFICATE blocks (other blocks are skipped), or a
// single DER certificate.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	if !strings.Contains(string(b), "-----BEGIN") {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

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
