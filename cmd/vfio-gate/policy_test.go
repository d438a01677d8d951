package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// policyDir writes a root-CA anchor and a policy using it into a fresh
// directory with safe modes, and returns the policy path and the anchor's fingerprint.
func policyDir(t *testing.T, text string) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vfio-gate")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme-root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return path, hex.EncodeToString(sum[:])
}

const goodPolicy = `version: 1
mode: enforce
defaults: {confidential: deny-unattested, non_confidential: allow-unattested}
iommu_group: {exempt_classes: [0x0604]}
rules:
  - name: acme-nic
    match: {vendor: 0x1234, device: [0x5678]}
    spdm:
      min_version: "1.2"
      algorithms: {asym: [ecdsa-p384], hash: [sha-384]}
      trust_anchors: [acme-root.pem]
    measurements: {require_signed: true, min_svn: 7}
`

// strictArgs adds --insecure-skip-permission-check when not root (files
// in t.TempDir are then not root-owned).
func strictArgs(args ...string) []string {
	if os.Geteuid() != 0 {
		args = append(args, "--insecure-skip-permission-check")
	}
	return args
}

func TestPolicyCheckValid(t *testing.T) {
	path, fp := policyDir(t, goodPolicy)
	code, out, errs := runCLI(t, strictArgs("policy", "check", path)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{path + ": valid (version 1, mode enforce)", "rule acme-nic (line 6): matches vendor 0x1234, device 0x5678",
		"SPDM version >= 1.2", "firmware SVN >= 7", "sha256:" + fp, "CN=Acme Root", "iommu group exempt:       0x0604"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --policy is the default FILE.
	code, out, _ = runCLI(t, strictArgs("--policy", path, "policy", "check")...)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("--policy: exit %d\n%s", code, out)
	}
}

func TestPolicyCheckJSON(t *testing.T) {
	path, fp := policyDir(t, goodPolicy)
	code, out, errs := runCLI(t, strictArgs("policy", "check", "--json", path)...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var r struct {
		Valid  bool `json:"valid"`
		Policy struct {
			Mode  string `json:"mode"`
			Rules []struct {
				Name    string `json:"name"`
				Anchors []struct {
					SHA256 string `json:"sha256"`
				} `json:"trust_anchors"`
			} `json:"rules"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.Valid || r.Policy.Mode != "enforce" || len(r.Policy.Rules) != 1 || r.Policy.Rules[0].Anchors[0].SHA256 != fp {
		t.Fatalf("json %+v", r)
	}
}

func TestPolicyCheckInvalid(t *testing.T) {
	path, _ := policyDir(t, strings.Replace(goodPolicy, "min_svn: 7", "min_svn: 7, max_svn: 9", 1)+"bogus: 1\n")
	code, out, errs := runCLI(t, strictArgs("policy", "check", path)...)
	if code != exitInternal || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{path + ":12: unknown key \"max_svn\"", path + ":13: unknown key \"bogus\""} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	code, out, _ = runCLI(t, strictArgs("policy", "check", "--json", path)...)
	var r rpt.PolicyCheck
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitInternal || r.Valid || len(r.Errors) != 2 || r.Errors[0].Line != 12 {
		t.Fatalf("json: exit %d err %v %+v", code, err, r)
	}
	code, _, errs = runCLI(t, "policy", "check", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitInternal || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing: exit %d %q", code, errs)
	}
}

func TestPolicyCheckPermissions(t *testing.T) {
	path, _ := policyDir(t, goodPolicy)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "policy", "check", path)
	if code != exitInternal || !strings.Contains(errs, "writable by group or others") {
		t.Fatalf("world-writable policy: exit %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "policy", "check", "--insecure-skip-permission-check", path)
	if code != 0 || !strings.Contains(errs, "WARNING: --insecure-skip-permission-check") {
		t.Fatalf("skip flag: exit %d %q", code, errs)
	}
}

func TestExitCodesForPolicyAndVFIO(t *testing.T) {
	b := pci.BDF{Bus: 0x3b}
	cases := []struct {
		err  error
		want int
	}{
		{&policy.Error{File: "p.yaml", Line: 3, Msg: "bad"}, exitInternal},
		{errors.Join(&policy.Error{File: "p.yaml", Line: 3, Msg: "bad"}), exitInternal},
		{&vfio.BindError{BDF: b, Step: vfio.StepProbe, Err: errors.New("x")}, exitBind},
		{errors.Join(&vfio.BindError{BDF: b, Step: vfio.StepProbe, Err: errors.New("x")}, errors.New("undo")), exitBind},
		{&vfio.GroupError{Group: 1, Member: b}, exitBind},
		{fmt.Errorf("%w: x", vfio.ErrNoIOMMU), exitBind},
		{fmt.Errorf("%w: x", vfio.ErrAlreadyBound), exitBind},
		{fmt.Errorf("%w: x", vfio.ErrNoDevice), exitUnavailable},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
