package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// TestAlgorithmNamesMatchSPDM keeps the policy's algorithm vocabulary equal to
// the names spdm (and so attest) reports: a name policy does not know would be
// refused at load, and a name spelled differently would deny every device.
func TestAlgorithmNamesMatchSPDM(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	anchor := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(anchor, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	for bit := range 12 {
		names = append(names, spdm.AsymAlgo(1<<bit).String())
	}
	for bit := range 7 {
		names = append(names, spdm.HashAlgo(1<<bit).String())
	}
	for _, n := range names {
		if n == "" || strings.Contains(n, "|") || strings.Contains(n, "0x") {
			t.Fatalf("spdm name %q is not a single algorithm name", n)
		}
		field := "asym"
		if strings.HasPrefix(n, "sha") || strings.HasPrefix(n, "sm3") {
			field = "hash"
		}
		doc := fmt.Sprintf("version: 1\nmode: enforce\ndefaults: {confidential: deny-unattested, non_confidential: allow-unattested}\nrules:\n  - name: r\n    match: {vendor: 0x1234}\n    spdm:\n      trust_anchors: [%s]\n      algorithms: {%s: [%s]}\n", anchor, field, n)
		if _, err := policy.Parse([]byte(doc), "names.yaml", &policy.LoadOptions{SkipPermissionCheck: true}); err != nil {
			t.Errorf("policy refuses spdm's %s name %q: %v", field, n, err)
		}
	}
}
