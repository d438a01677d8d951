package spdm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

func otherNameSAN(t *testing.T, names map[string]asn1.ObjectIdentifier) pkix.Extension {
	var gns []asn1.RawValue
	for val, oid := range names {
		o, err := asn1.Marshal(oid)
		if err != nil {
			t.Fatal(err)
		}
		u, err := asn1.MarshalWithParams(val, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		inner, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: u})
		if err != nil {
			t.Fatal(err)
		}
		gns = append(gns, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, inner...)})
	}
	v, err := asn1.Marshal(gns)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSAN, Value: v}
}

type testPKI struct {
	root, inter *x509.Certificate
	rootKey     *ecdsa.PrivateKey
	interKey    *ecdsa.PrivateKey
}

var testNow = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func mkCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, priv *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestPKI(t *testing.T, interCA bool) *testPKI {
	p := &testPKI{}
	p.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.interKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: testNow.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	p.root = mkCert(t, rt, rt, &p.rootKey.PublicKey, p.rootKey)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test intermediate"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: testNow.AddDate(10, 0, 0), IsCA: interCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	p.inter = mkCert(t, it, p.root, &p.interKey.PublicKey, p.rootKey)
	return p
}

func (p *testPKI) leaf(t *testing.T, mod func(*x509.Certificate)) *CertChain {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "test leaf"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: testNow.AddDate(5, 0, 0), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature}
	if mod != nil {
		mod(lt)
	}
	leaf := mkCert(t, lt, p.inter, &k.PublicKey, p.interKey)
	rh := sha256.Sum256(p.root.Raw)
	body := append(append(append(rh[:], p.root.Raw...), p.inter.Raw...), leaf.Raw...)
	buf := wire.NewBuilder(nil).AddU16(uint16(4 + len(body))).AddU16(0).AddBytes(body).Bytes()
	cc, err := parseChainBuffer(buf, HashSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

const goodSAN = "Vendor=8086:Device=0b25:CC=120000:REV=01:SSVID=8086:SSID=0000:0123456789abcdef"

func TestVerifyChainGenerated(t *testing.T) {
	p := newTestPKI(t, true)
	roots := []*x509.Certificate{p.root}
	sans := func(l *x509.Certificate) {
		l.ExtraExtensions = []pkix.Extension{otherNameSAN(t, map[string]asn1.ObjectIdentifier{goodSAN: oidCMASAN, "ACME:W:1": oidDMTFDeviceInfo})}
	}
	rep := verifyChain(p.leaf(t, sans), roots, testNow, AsymECDSAP256, HashSHA256)
	if !rep.Verified {
		t.Fatal(rep.Err)
	}
	s := rep.CMASAN
	if s == nil || s.VendorID != 0x8086 || s.DeviceID != 0x0b25 || s.Class != 0x120000 || s.Revision != 1 ||
		*s.SubsystemVendorID != 0x8086 || *s.SubsystemID != 0 || *s.DSN != 0x0123456789abcdef || s.Raw != goodSAN {
		t.Fatalf("CMA SAN %+v", s)
	}
	if rep.DeviceInfo == nil || *rep.DeviceInfo != "ACME:W:1" {
		t.Fatalf("device info %v", rep.DeviceInfo)
	}
	wantAnchor := sha256.Sum256(p.root.Raw)
	if string(rep.AnchorSHA256) != string(wantAnchor[:]) {
		t.Fatal("anchor hash")
	}

	cases := []struct {
		name string
		mod  func(*x509.Certificate)
		kind string
	}{
		{"requester-auth only", func(l *x509.Certificate) { l.UnknownExtKeyUsage = []asn1.ObjectIdentifier{oidDMTFRequesterAuth} }, ChainErrorKeyUsage},
		{"requester and responder auth", func(l *x509.Certificate) {
			l.UnknownExtKeyUsage = []asn1.ObjectIdentifier{oidDMTFRequesterAuth, oidDMTFResponderAuth}
		}, ""},
		{"TLS EKUs", func(l *x509.Certificate) {
			l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageOCSPSigning}
		}, ""},
		{"no digitalSignature", func(l *x509.Certificate) { l.KeyUsage = x509.KeyUsageKeyEncipherment }, ChainErrorKeyUsage},
		{"leaf is CA", func(l *x509.Certificate) { l.IsCA = true; l.KeyUsage |= x509.KeyUsageCertSign }, ChainErrorKeyUsage},
		{"not yet valid", func(l *x509.Certificate) { l.NotBefore = testNow.AddDate(0, 0, 1) }, ChainErrorExpired},
		{"expired", func(l *x509.Certificate) { l.NotAfter = testNow.AddDate(0, 0, -1) }, ChainErrorExpired},
		{"malformed CMA SAN", func(l *x509.Certificate) {
			l.ExtraExtensions = []pkix.Extension{otherNameSAN(t, map[string]asn1.ObjectIdentifier{"Vendor=8086:Device=0B25:CC=120000:REV=01": oidCMASAN})}
		}, ""},
	}
	for _, c := range cases {
		rep := verifyChain(p.leaf(t, c.mod), roots, testNow, AsymECDSAP256, HashSHA256)
		switch {
		case c.kind == "" && !rep.Verified:
			t.Errorf("%s: %v", c.name, rep.Err)
		case c.kind != "" && (rep.Err == nil || rep.Err.Kind != c.kind):
			t.Errorf("%s: got %v, want %s", c.name, rep.Err, c.kind)
		}
		if c.name == "malformed CMA SAN" && (rep.CMASAN != nil || rep.CMASANError == nil) {
			t.Errorf("upper-case hex accepted: %+v", rep.CMASAN)
		}
	}
	// Intermediate without CA flag.
	p2 := newTestPKI(t, false)
	if rep := verifyChain(p2.leaf(t, nil), []*x509.Certificate{p2.root}, testNow, AsymECDSAP256, HashSHA256); rep.Err == nil || rep.Err.Kind != ChainErrorKeyUsage {
		t.Fatalf("non-CA intermediate: %v", rep.Err)
	}
	// Anchor with the same name but another key: untrusted.
	p3 := newTestPKI(t, true)
	if rep := verifyChain(p.leaf(t, nil), []*x509.Certificate{p3.root}, testNow, AsymECDSAP256, HashSHA256); rep.Err == nil || rep.Err.Kind != ChainErrorUntrusted {
		t.Fatalf("same-name anchor: %v", rep.Err)
	}
	// Garbage certificate bytes.
	cc := p.leaf(t, nil)
	cc.Certs[1] = []byte{0x30, 0x03, 1, 2, 3}
	if rep := verifyChain(cc, roots, testNow, AsymECDSAP256, HashSHA256); rep.Err == nil || rep.Err.Kind != ChainErrorMalformed {
		t.Fatalf("garbage: %v", rep.Err)
	}
	var ce *ChainError
	if !errors.As(error(&VerificationError{Step: "certificate-chain", Err: rep.Err}), &ce) {
		t.Fatal("ChainError not reachable with errors.As")
	}
}

func TestParseCMASAN(t *testing.T) {
	good := []string{
		"Vendor=1b36:Device=0010:CC=010802:REV=02",
		"Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100",
		"Vendor=1b36:Device=0010:CC=010802:REV=02:00000000deadbeef",
		goodSAN,
	}
	for _, s := range good {
		if _, err := parseCMASAN(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []string{
		"", "Vendor=1b36", "Vendor=1B36:Device=0010:CC=010802:REV=02", "Vendor=1b36:Device=010:CC=010802:REV=02",
		"Device=0010:Vendor=1b36:CC=010802:REV=02", "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4",
		"Vendor=1b36:Device=0010:CC=010802:REV=02:deadbeef", "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100:00000000deadbeef:x",
		"Vendor=+b36:Device=0010:CC=010802:REV=02",
	}
	for _, s := range bad {
		if v, err := parseCMASAN(s); err == nil {
			t.Errorf("%q accepted: %+v", s, v)
		}
	}
	s, _ := parseCMASAN("Vendor=1b36:Device=0010:CC=010802:REV=02")
	if s.SubsystemID != nil || s.DSN != nil {
		t.Fatal("optional fields set")
	}
}

func TestCMASANMatches(t *testing.T) {
	s, err := parseCMASAN(goodSAN)
	if err != nil {
		t.Fatal(err)
	}
	ssv, ssid, dsn := uint16(0x8086), uint16(0), uint64(0x0123456789abcdef)
	id := FunctionID{VendorID: 0x8086, DeviceID: 0x0b25, Class: 0x120000, Revision: 1, SubsystemVendorID: &ssv, SubsystemID: &ssid, DSN: &dsn}
	if !s.Matches(id) {
		t.Fatalf("%q vs %q", s.Raw, CMASANFor(id))
	}
	id.Revision = 2
	if s.Matches(id) {
		t.Fatal("other revision matches")
	}
	id.Revision, id.DSN = 1, nil
	if s.Matches(id) {
		t.Fatal("SAN with DSN matches a function without one")
	}
	var none *CMASAN
	if none.Matches(id) {
		t.Fatal("absent SAN matches")
	}
}
