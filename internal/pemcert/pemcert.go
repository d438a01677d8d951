package pemcert

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Parse returns the certificates in b: every PEM CERTIFICATE block (other
// block types are skipped) when b holds PEM, otherwise one DER certificate
// or several concatenated. At least one certificate or an error.
func Parse(b []byte) ([]*x509.Certificate, error) {
	if !strings.Contains(string(b), "-----BEGIN") {
		cs, err := x509.ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
		}
		if len(cs) == 0 {
			return nil, errors.New("no certificate")
		}
		return cs, nil
	}
	var out []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
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
