package policy

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadCertificates and ReadPublicKey: a file's certificates or key; a
// missing, oversized or unparsable file is an error.
func TestReadCertificatesAndPublicKey(t *testing.T) {
	c, k := testCert(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blk := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	certs, err := ReadCertificates(write("two.pem", append(append([]byte{}, blk...), blk...)))
	if err != nil || len(certs) != 2 || !certs[0].Equal(c) {
		t.Fatalf("two certificates: %d, %v", len(certs), err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadPublicKey(write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
	if err != nil || !k.PublicKey.Equal(pub.(*ecdsa.PublicKey)) {
		t.Fatalf("public key: %v", err)
	}
	big := write("big.pem", make([]byte, MaxCertFile+1))
	for name, err := range map[string]error{
		"missing cert":  second(ReadCertificates(filepath.Join(dir, "none"))),
		"big cert":      second(ReadCertificates(big)),
		"not a cert":    second(ReadCertificates(write("junk", []byte("junk")))),
		"missing key":   second(ReadPublicKey(filepath.Join(dir, "none"))),
		"big key":       second(ReadPublicKey(big)),
		"cert, not key": second(ReadPublicKey(write("c.pem", blk))),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ReadCertificates(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
