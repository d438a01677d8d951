package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testCert(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TestParseCertificates: PEM (other blocks skipped) or one DER certificate.
func TestParseCertificates(t *testing.T) {
	c, _ := testCert(t)
	blk := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	other := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	for name, in := range map[string][]byte{"der": c.Raw, "pem": blk, "two": append(append(append([]byte{}, blk...), other...), blk...)} {
		cs, err := ParseCertificates(in)
		if err != nil || len(cs) == 0 || !cs[0].Equal(c) {
			t.Errorf("%s: %v, %v", name, cs, err)
		}
	}
	if cs, _ := ParseCertificates(append(append([]byte{}, blk...), blk...)); len(cs) != 2 {
		t.Errorf("two blocks: %d certificates", len(cs))
	}
	for name, in := range map[string]string{"garbage": "not a cert", "no certificate": string(other)} {
		if _, err := ParseCertificates([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestParsePublicKey: one PEM PUBLIC KEY block or its DER; anything else
// is refused with the reason.
func TestParsePublicKey(t *testing.T) {
	_, k := testCert(t)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	blk := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	for name, in := range map[string][]byte{"der": der, "pem": blk} {
		pub, err := ParsePublicKey(in)
		if p, ok := pub.(*ecdsa.PublicKey); err != nil || !ok || !p.Equal(&k.PublicKey) {
			t.Errorf("%s: %v, %v", name, pub, err)
		}
	}
	for name, c := range map[string]struct{ in, want string }{
		"two":  {string(blk) + string(blk), "more than one PEM block"},
		"cert": {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), "PUBLIC KEY"},
	} {
		if _, err := ParsePublicKey([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func FuzzParseCertificates(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCertificates(b)
		if (err == nil) != (len(cs) > 0) {
			t.Fatalf("%d certificates with error %v", len(cs), err)
		}
		if pub, err := ParsePublicKey(b); (err == nil) != (pub != nil) {
			t.Fatalf("key %v with error %v", pub, err)
		}
	})
}
