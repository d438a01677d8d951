package pemcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func cert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParse(t *testing.T) {
	a, b := cert(t, "a"), cert(t, "b")
	pa := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Raw})
	pb := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Raw})
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
	for name, tc := range map[string]struct {
		in   []byte
		want []*x509.Certificate
	}{
		"one DER":          {a.Raw, []*x509.Certificate{a}},
		"two DER":          {append(append([]byte{}, a.Raw...), b.Raw...), []*x509.Certificate{a, b}},
		"PEM, key skipped": {append(append(append([]byte{}, pa...), key...), pb...), []*x509.Certificate{a, b}},
	} {
		got, err := Parse(tc.in)
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%s: %d certificates, %v", name, len(got), err)
		}
		for i := range got {
			if !got[i].Equal(tc.want[i]) {
				t.Errorf("%s: certificate %d differs", name, i)
			}
		}
	}
	for name, in := range map[string][]byte{"empty": nil, "garbage": []byte("not a cert"), "only a key": key, "bad PEM body": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		if cs, err := Parse(in); err == nil {
			t.Errorf("%s: accepted %d certificates", name, len(cs))
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := Parse(b)
		if (err == nil) != (len(cs) > 0) {
			t.Fatalf("%d certificates with error %v", len(cs), err)
		}
	})
}
