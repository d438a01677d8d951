package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writePubKeyPEM(t *testing.T, n int) string {
	t.Helper()
	var b []byte
	for range n {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEmulatePublicKeyOnlyAttest: `emulate --public-key-only` offers a
// pre-provisioned key (PUB_KEY_ID_CAP, no CERT_CAP) and writes it;
// `attest --socket --responder-public-key` verifies CHALLENGE and signed
// MEASUREMENTS with slot 0xFF; another key fails the attestation (exit 2),
// and so does a certificate device (no PUB_KEY_ID_CAP).
func TestEmulatePublicKeyOnlyAttest(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "emu-key.pem")
	out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p384", "--public-key-only", "--write-public-key", keyFile)
	defer func() { stop(); <-done }()
	if out.PublicKey != keyFile || !slices.Contains(out.Capabilities, "pub-key-id") || slices.Contains(out.Capabilities, "cert") {
		t.Fatalf("startup record %+v", out)
	}
	code, stdout, errs := runCLI(t, "attest", "--socket", out.Listen, "--responder-public-key", keyFile, "--json")
	if code != 0 {
		t.Fatalf("exit %d %s\n%s", code, errs, stdout)
	}
	m := evidenceJSON(t, stdout)
	if m["challenge_verified"] != true || m["measurements_signature_verified"] != true || m["failure"] != nil {
		t.Fatalf("evidence %v", m)
	}
	if slot := m["evidence"].(map[string]any)["slot"]; slot != float64(0xFF) {
		t.Fatalf("evidence slot %v, want 255", slot)
	}
	// Another key: the signatures do not verify.
	if code, stdout, _ := runCLI(t, "attest", "--socket", out.Listen, "--responder-public-key", writePubKeyPEM(t, 1), "--json"); code != exitAttestation {
		t.Fatalf("wrong key: exit %d\n%s", code, stdout)
	}
	// A certificate device has no provisioned key.
	cert, stopCert, doneCert := startEmulate(t, "--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p384")
	defer func() { stopCert(); <-doneCert }()
	if code, stdout, _ := runCLI(t, "attest", "--socket", cert.Listen, "--responder-public-key", keyFile, "--json"); code != exitAttestation || !strings.Contains(stdout, "PUB_KEY_ID_CAP") {
		t.Fatalf("certificate device: exit %d\n%s", code, stdout)
	}
	// Usage errors.
	for _, args := range [][]string{
		{"attest", "--socket", out.Listen, "--responder-public-key", keyFile, "--slot", "0"},
		{"attest", "--socket", out.Listen, "--responder-public-key", writePubKeyPEM(t, 2)},
		{"attest", "--socket", out.Listen, "--responder-public-key", filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if code, _, _ := runCLI(t, args...); code != exitInternal {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
	}
}

// TestEmulateMultiKey: `emulate --multi-key only|negotiated` advertises
// MULTI_KEY_CAP at 1.3 and reports it; `attest --socket` attests the
// multi-key device (DIGESTS with key fields, CHALLENGE, signed
// measurements, a session); bad combinations are usage errors.
func TestEmulateMultiKey(t *testing.T) {
	for _, mode := range []string{"only", "negotiated"} {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		out, stop, done := startEmulate(t, "--listen", "127.0.0.1:0", "--algorithms", "ecdsa-p384", "--multi-key", mode, "--write-ca", caFile)
		if out.MultiKey != mode || !slices.Contains(out.Capabilities, "multi-key-"+mode) {
			t.Fatalf("startup record %+v", out)
		}
		code, stdout, errs := runCLI(t, "attest", "--socket", out.Listen, "--trust-anchor", caFile, "--session", "--json")
		stop()
		<-done
		if code != 0 {
			t.Fatalf("%s: exit %d %s\n%s", mode, code, errs, stdout)
		}
		if m := evidenceJSON(t, stdout); m["challenge_verified"] != true || m["measurements_signature_verified"] != true {
			t.Fatalf("%s: evidence %v", mode, m)
		}
	}
	for _, args := range [][]string{
		{"emulate", "--listen", "127.0.0.1:0", "--multi-key", "sometimes"},
		{"emulate", "--listen", "127.0.0.1:0", "--multi-key", "only", "--public-key-only"},
		{"emulate", "--listen", "127.0.0.1:0", "--write-public-key", filepath.Join(t.TempDir(), "k.pem")},
	} {
		if code, _, _ := runCLI(t, args...); code != exitInternal {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
	}
}
