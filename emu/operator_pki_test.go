package emu

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// opChain is a test-generated operator chain: root → intermediate → leaf.
type opChain struct {
	root, inter, leaf *x509.Certificate
	leafKey           crypto.Signer
}

func genKey(t *testing.T, k KeyType) crypto.Signer {
	t.Helper()
	switch k {
	case KeyECDSAP384:
		key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	case KeyEd25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	t.Fatalf("no test key %s", k)
	return nil
}

// genOpChain makes a chain the way a vendor's test PKI would, with the
// leaf key leafKey (nil = a new one).
func genOpChain(t *testing.T, k KeyType, org string, leafKey crypto.Signer) opChain {
	t.Helper()
	now := time.Now()
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, interKey := genKey(t, k), genKey(t, k)
	if leafKey == nil {
		leafKey = genKey(t, k)
	}
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{org}, CommonName: org + " root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	root := mk(rootT, rootT, rootKey.Public(), rootKey)
	interT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{org}, CommonName: org + " intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	inter := mk(interT, root, interKey.Public(), rootKey)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{Organization: []string{org}, CommonName: org + " device"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature}
	leaf := mk(leafT, inter, leafKey.Public(), interKey)
	return opChain{root: root, inter: inter, leaf: leaf, leafKey: leafKey}
}

func (c opChain) der() []byte { return slices.Concat(c.root.Raw, c.inter.Raw, c.leaf.Raw) }

// pemLeafFirst is the chain as PEM, leaf first (as many bundles are).
func (c opChain) pemLeafFirst() []byte {
	var b []byte
	for _, x := range []*x509.Certificate{c.leaf, c.inter, c.root} {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})...)
	}
	return b
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sec1PEM(t *testing.T, k crypto.Signer) []byte {
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func pkcs8DER(t *testing.T, k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// dmtfTree writes a DMTF sample-key layout: ecp384/ (SEC 1 PEM key, DER
// bundle, a slot-1 chain under another root), ed25519/ (PKCS #8 DER key,
// a PEM bundle leaf first), and ed448/ with a key Go cannot read.
func dmtfTree(t *testing.T) (dir string, ec, ec1, ed opChain) {
	dir = t.TempDir()
	ec = genOpChain(t, KeyECDSAP384, "Vendor A", nil)
	ec1 = genOpChain(t, KeyECDSAP384, "Vendor A slot 1", ec.leafKey)
	ed = genOpChain(t, KeyEd25519, "Vendor A", nil)
	writeFile(t, filepath.Join(dir, "ecp384", "end_responder.key"), sec1PEM(t, ec.leafKey))
	writeFile(t, filepath.Join(dir, "ecp384", "bundle_responder.certchain.der"), ec.der())
	writeFile(t, filepath.Join(dir, "ecp384", "bundle_responder.certchain1.der"), ec1.der())
	writeFile(t, filepath.Join(dir, "ed25519", "end_responder.key"), pkcs8DER(t, ed.leafKey))
	writeFile(t, filepath.Join(dir, "ed25519", "bundle_responder.certchain.der"), ed.pemLeafFirst())
	writeFile(t, filepath.Join(dir, "ed448", "end_responder.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	writeFile(t, filepath.Join(dir, "ed448", "bundle_responder.certchain.der"), ec.der())
	writeFile(t, filepath.Join(dir, "README"), []byte("not a key"))
	return dir, ec, ec1, ed
}

// TestOperatorPKIDMTFLayout: the device serves the operator's chains from
// a DMTF sample-key tree, and a requester verifies them against the
// operator's roots (and not against the device's built-in test roots).
func TestOperatorPKIDMTFLayout(t *testing.T) {
	dir, ec, ec1, ed := dmtfTree(t)
	p, err := LoadPKIDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Slots) != 2 || len(p.Slots[0]) != 2 || len(p.Slots[1]) != 1 || len(p.Skipped) != 1 || !strings.Contains(p.Skipped[0], "ed448") {
		t.Fatalf("loaded %d slots (%v), skipped %q", len(p.Slots), p.Slots, p.Skipped)
	}
	d, err := New(Config{PKI: p})
	if err != nil {
		t.Fatal(err)
	}
	anchors := d.Anchors()
	for _, root := range []*x509.Certificate{ec.root, ec1.root, ed.root} {
		if !slices.ContainsFunc(anchors, root.Equal) {
			t.Fatalf("anchor %s missing from %d", root.Subject, len(anchors))
		}
	}
	if len(anchors) != 3 {
		t.Fatalf("%d anchors", len(anchors))
	}
	ctx := context.Background()
	for _, tc := range []struct {
		asym  spdm.AsymAlgo
		slot  uint8
		chain opChain
		mask  uint8
	}{
		{spdm.AsymECDSAP384, 0, ec, 0x3},
		{spdm.AsymECDSAP384, 1, ec1, 0x3},
		{spdm.AsymEd25519, 0, ed, 0x1},
	} {
		r := spdm.NewRequester(d.Direct(), &spdm.Options{Roots: []*x509.Certificate{tc.chain.root}, AsymAlgos: tc.asym})
		if _, err := r.Negotiate(ctx); err != nil {
			t.Fatal(err)
		}
		if dg, err := r.Digests(ctx); err != nil || dg.SlotMask != tc.mask {
			t.Fatalf("%s: digests %+v %v", tc.asym, dg, err)
		}
		if _, err := r.Certificate(ctx, tc.slot); err != nil {
			t.Fatal(err)
		}
		rep, err := r.VerifyChain(tc.slot)
		if err != nil || !rep.Verified {
			t.Fatalf("%s slot %d: chain %v %+v", tc.asym, tc.slot, err, rep)
		}
		if ch, err := r.Challenge(ctx, tc.slot, spdm.SummaryNone); err != nil || !ch.Verified {
			t.Fatalf("%s slot %d: challenge %v", tc.asym, tc.slot, err)
		}
	}
	// The device's own test roots do not verify it.
	builtin, err := New(Config{Algorithms: spdm.AsymECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	r := spdm.NewRequester(d.Direct(), &spdm.Options{Roots: builtin.Anchors(), AsymAlgos: spdm.AsymECDSAP384})
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Certificate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.VerifyChain(0); err == nil || rep.Verified {
		t.Fatal("operator chain verified against the built-in test root")
	}
}

// TestOperatorKeyChainFiles: --key/--chain with PEM and DER, and the
// refusals with their reasons.
func TestOperatorKeyChainFiles(t *testing.T) {
	dir := t.TempDir()
	ec := genOpChain(t, KeyECDSAP384, "Vendor B", nil)
	other := genOpChain(t, KeyECDSAP384, "Vendor C", nil)
	keyPEM := filepath.Join(dir, "leaf.key")
	writeFile(t, keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8DER(t, ec.leafKey)}))
	keyDER := filepath.Join(dir, "leaf.der")
	writeFile(t, keyDER, pkcs8DER(t, ec.leafKey))
	chainPEM := filepath.Join(dir, "chain.pem")
	writeFile(t, chainPEM, ec.pemLeafFirst())
	for _, kf := range []string{keyPEM, keyDER} {
		c, err := LoadKeyChain(kf, chainPEM)
		if err != nil {
			t.Fatal(err)
		}
		if c.Type != KeyECDSAP384 || !c.Anchor.Equal(ec.root) || !c.Leaf().Equal(ec.leaf) || len(c.Certs) != 3 {
			t.Fatalf("%s: chain %s, anchor %s", kf, c.Type, c.Anchor.Subject)
		}
	}
	wrongKey := filepath.Join(dir, "other.key")
	writeFile(t, wrongKey, sec1PEM(t, other.leafKey))
	broken := filepath.Join(dir, "broken.der")
	writeFile(t, broken, slices.Concat(ec.root.Raw, other.inter.Raw, ec.leaf.Raw))
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("-----BEGIN PRIVATE KEY-----\nnot base64\n"))
	for _, tc := range []struct{ key, chain, want string }{
		{wrongKey, chainPEM, "does not belong to the leaf"},
		{keyPEM, broken, "do not form a chain"},
		{garbage, chainPEM, "malformed PEM"},
		{keyPEM, filepath.Join(dir, "missing.der"), "no such file"},
	} {
		if _, err := LoadKeyChain(tc.key, tc.chain); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s + %s: %v, want %q", filepath.Base(tc.key), filepath.Base(tc.chain), err, tc.want)
		}
	}
	// Faults that need generated chains are refused with a PKI.
	c, err := LoadKeyChain(keyPEM, chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{PKI: &PKI{Slots: [][]*Chain{{c}}}, Profile: "wrong-root"}); err == nil || !strings.Contains(err.Error(), "generated chains") {
		t.Fatalf("wrong-root with a PKI: %v", err)
	}
	if _, err := New(Config{PKI: &PKI{Slots: [][]*Chain{{c}}}, Algorithms: spdm.AsymEd25519}); err == nil {
		t.Fatal("ed25519 only, with an ECDSA key: accepted")
	}
	// An empty directory is refused.
	if _, err := LoadPKIDir(t.TempDir()); err == nil {
		t.Fatal("empty --pki directory accepted")
	}
	// A key without its chain is refused.
	half := t.TempDir()
	writeFile(t, filepath.Join(half, "end_responder.key"), sec1PEM(t, ec.leafKey))
	if _, err := LoadPKIDir(half); err == nil || !strings.Contains(err.Error(), "bundle_responder.certchain.der") {
		t.Fatalf("key without chain: %v", err)
	}
}

// FuzzOperatorPKI: key and chain files never panic the loader, and a chain
// it accepts is linked and matches its key.
func FuzzOperatorPKI(f *testing.F) {
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"), []byte{0x30, 0x82, 0x01, 0x00})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, keyBytes, chainBytes []byte) {
		key, kerr := ParsePrivateKey(keyBytes)
		certs, cerr := ParseCertificates(chainBytes)
		if kerr != nil || cerr != nil {
			return
		}
		c, err := NewOperatorChain(key, certs)
		if err != nil {
			return
		}
		if !linked(c.Certs) || c.Anchor != c.Certs[0] {
			t.Fatalf("accepted an unlinked chain")
		}
	})
}

// TestPublicKeyOnlyDevice: with PublicKeyOnly the device is verified with
// its leaf public key alone (slot 0xFF), no certificates read.
func TestPublicKeyOnlyDevice(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymECDSAP256, PublicKeyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := spdm.NewRequester(d.Direct(), &spdm.Options{ResponderPublicKey: d.Chains()[0].LeafKey.Public()})
	if _, err := r.Negotiate(ctx); err != nil {
		t.Fatal(err)
	}
	if ch, err := r.Challenge(ctx, spdm.SlotProvisioned, spdm.SummaryTCB); err != nil || !ch.Verified {
		t.Fatalf("challenge: %v", err)
	}
	if m, err := r.Measurements(ctx, spdm.MeasOpts{Index: spdm.MeasOpAll, Signed: true, Slot: spdm.SlotProvisioned}); err != nil || !m.Verified {
		t.Fatalf("measurements: %v", err)
	}
}

// TestMultiKeyConfig: MULTI_KEY_CAP is advertised at 1.3 only, and not
// with PublicKeyOnly (DSP0274 1.3.0: MULTI_KEY_CAP excludes PUB_KEY_ID_CAP)
// nor with the reserved value 11b.
func TestMultiKeyConfig(t *testing.T) {
	d, err := New(Config{Algorithms: spdm.AsymECDSAP256, MultiKey: spdm.MultiKeyOnly})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.CapabilityFlags(spdm.Version13) & spdm.CapMultiKeyMask; got != 1<<26 {
		t.Fatalf("1.3 MULTI_KEY_CAP %#x", got)
	}
	if got := d.CapabilityFlags(spdm.Version12) & spdm.CapMultiKeyMask; got != 0 {
		t.Fatalf("1.2 MULTI_KEY_CAP %#x", got)
	}
	for _, c := range []Config{{MultiKey: spdm.MultiKeyNegotiated, PublicKeyOnly: true}, {MultiKey: 3}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	pk, err := New(Config{Algorithms: spdm.AsymECDSAP256, PublicKeyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pk.PublicKeysPEM()
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" || len(rest) != 0 {
		t.Fatalf("PublicKeysPEM: %q", b)
	}
	if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
		t.Fatal(err)
	}
}
