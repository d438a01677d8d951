package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/cdat"
	"github.com/vfio-gate/vfio-gate/emu"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// devFixture is a sysfs tree whose functions are served by config spaces
// in memory (software devices), run as "root".
type devFixture struct {
	*gatetest.Devices
	dir     string
	lockDir string
}

func newDevFixture(t *testing.T) *devFixture {
	t.Helper()
	d := gatetest.NewDevices(t)
	return &devFixture{Devices: d, dir: d.Tree.Dir, lockDir: t.TempDir()}
}

func (fx *devFixture) addEmu(t *testing.T, bdf string, cfg emu.Config) *emu.Device {
	t.Helper()
	d, _ := fx.AddEmu(t, bdf, cfg)
	return d
}

// run runs the CLI in-process against the fixture.
func (fx *devFixture) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	e := &env{in: strings.NewReader(""), out: &out, errw: &errw, getenv: func(string) string { return "" },
		geteuid: func() int { return 0 }, configOpener: fx.Open}
	code := execute(context.Background(), e, append([]string{"--sysfs-root", fx.dir}, args...))
	checkJSONOut(t, args, out.String())
	return code, out.String(), errw.String()
}

func writeAnchor(t *testing.T, d *emu.Device, der bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root.pem")
	b := d.AnchorsPEM()
	if der {
		p = filepath.Join(t.TempDir(), "root.der")
		blk, _ := pem.Decode(b)
		b = blk.Bytes
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// evidenceJSON checks the keys issue 3 item 5 names and returns the object.
func evidenceJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "algorithms", "certificate_chains", "measurements", "measurements_signature_verified",
		"challenge_verified", "round_trips", "evidence"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if a, ok := m["algorithms"].(map[string]any); ok {
		for _, k := range []string{"base_asym", "base_hash", "measurement_hash"} {
			if _, ok := a[k].(string); !ok {
				t.Errorf("algorithms lacks %q", k)
			}
		}
	}
	chains, _ := m["certificate_chains"].([]any)
	for _, c := range chains {
		cm := c.(map[string]any)
		for _, k := range []string{"slot", "digest", "verified", "error", "cma_san", "certificates"} {
			if _, ok := cm[k]; !ok {
				t.Errorf("chain lacks %q", k)
			}
		}
		for _, ci := range cm["certificates"].([]any) {
			for _, k := range []string{"subject", "issuer", "not_after", "sha256"} {
				if _, ok := ci.(map[string]any)[k]; !ok {
					t.Errorf("certificate lacks %q", k)
				}
			}
		}
	}
	meas, _ := m["measurements"].([]any)
	for _, x := range meas {
		for _, k := range []string{"index", "type", "raw", "value"} {
			if _, ok := x.(map[string]any)[k]; !ok {
				t.Errorf("measurement lacks %q", k)
			}
		}
	}
	return m
}

func TestAttestCLIGood(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:01:00.0", emu.Config{})
	for _, der := range []bool{false, true} {
		code, out, errs := fx.run(t, "attest", "0000:01:00.0", "--trust-anchor", writeAnchor(t, d, der), "--lock-dir", fx.lockDir, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, errs, out)
		}
		m := evidenceJSON(t, out)
		c := m["certificate_chains"].([]any)[0].(map[string]any)
		if m["version"] != "1.3" || c["verified"] != true || m["challenge_verified"] != true || m["measurements_signature_verified"] != true ||
			len(m["measurements"].([]any)) != len(emu.GoodMeasurements()) {
			t.Fatalf("evidence %v", m)
		}
		ev := m["evidence"].(map[string]any)
		if s, _ := ev["challenge_signature"].(string); s == "" || strings.ContainsAny(s, " ") {
			t.Errorf("bundle signature not base64: %v", ev["challenge_signature"])
		}
	}
	code, out, _ := fx.run(t, "attest", "0000:01:00.0", "--trust-anchor", writeAnchor(t, d, false), "--lock-dir", fx.lockDir)
	for _, want := range []string{"Result: PASS", "SPDM", "1.3", "ecdsa-p384", "chain verified", "CMA SAN Vendor=1b36", "matches the function's IDs",
		"Challenge", "INDEX", "mutable-firmware"} {
		if !strings.Contains(out, want) {
			t.Errorf("human output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestAttestCLIExitCodes(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:01:00.0", emu.Config{})
	bad := fx.addEmu(t, "0000:02:00.0", emu.Config{Profile: "bad-signature"})
	owned := fx.addEmu(t, "0000:03:00.0", emu.Config{})
	fx.Tree.Bind("0000:03:00.0", "cxl_pci")
	anchor := writeAnchor(t, d, false)

	// No trust anchor: chain unverified with the reason, exit 2.
	code, out, _ := fx.run(t, "attest", "0000:01:00.0", "--lock-dir", fx.lockDir, "--json")
	m := evidenceJSON(t, out)
	c := m["certificate_chains"].([]any)[0].(map[string]any)
	if code != exitAttestation || c["verified"] != false || !strings.Contains(c["error"].(string), "no trust anchor") {
		t.Fatalf("exit %d chain %v", code, c)
	}
	code, out, _ = fx.run(t, "attest", "0000:01:00.0", "--lock-dir", fx.lockDir)
	if code != exitAttestation || !strings.Contains(out, "Result: FAIL chain") || !strings.Contains(out, "--trust-anchor") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, _, _ = fx.run(t, "attest", "0000:02:00.0", "--trust-anchor", writeAnchor(t, bad, false), "--lock-dir", fx.lockDir)
	if code != exitAttestation {
		t.Fatalf("bad signature: exit %d", code)
	}
	code, out, _ = fx.run(t, "attest", "0000:03:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir, "--json")
	if code != exitUnavailable || !strings.Contains(out, `"mailbox-owned"`) || owned.Model().Stats().Writes != 0 {
		t.Fatalf("cxl_pci bound: exit %d\n%s", code, out)
	}
	code, out, _ = fx.run(t, "attest", "0000:01:00.0", "--trust-anchor", anchor, "--slot", "3", "--lock-dir", fx.lockDir)
	if code != exitAttestation || !strings.Contains(out, "slot 3 is not provisioned") {
		t.Fatalf("--slot 3: exit %d\n%s", code, out)
	}
	if code, _, _ := fx.run(t, "attest", "0000:01:00.0", "--trust-anchor", anchor, "--slot", "0", "--lock-dir", fx.lockDir); code != 0 {
		t.Fatalf("--slot 0: exit %d", code)
	}
	code, _, errs := fx.run(t, "attest", "0000:0f:00.0", "--lock-dir", fx.lockDir)
	if code != exitUnavailable {
		t.Fatalf("no device: exit %d %s", code, errs)
	}
	for _, args := range [][]string{{"attest"}, {"attest", "0000:01:00.0", "--socket", "127.0.0.1:1"}, {"attest", "zz"},
		{"attest", "0000:01:00.0", "--pci-id", "1234:5678"}, {"attest", "0000:01:00.0", "--slot", "9"}, {"attest", "0000:01:00.0", "--trust-anchor", "/nonexistent"}} {
		if code, _, _ := fx.run(t, append(args, "--lock-dir", fx.lockDir)...); code != exitInternal {
			t.Errorf("%v: exit %d, want usage error", args, code)
		}
	}
}

func TestAttestCLISocket(t *testing.T) {
	fx := newDevFixture(t)
	d, err := emu.New(emu.Config{Algorithms: spdm.AsymECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	addr := gatetest.ServeSocket(t, d)
	anchor := writeAnchor(t, d, false)
	code, out, errs := fx.run(t, "attest", "--socket", addr, "--trust-anchor", anchor, "--json")
	if code != 0 {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	m := evidenceJSON(t, out)
	id := m["identity"].(map[string]any)
	if id["socket"] != addr || id["from_cma_san"] != true || id["vendor_id"] != "0x1b36" {
		t.Fatalf("identity %v", id)
	}
	// The operator's --pci-id wins over the SAN; a mismatch is reported.
	code, out, _ = fx.run(t, "attest", "--socket", addr, "--trust-anchor", anchor, "--pci-id", "8086:0001", "--json")
	m = evidenceJSON(t, out)
	san := m["certificate_chains"].([]any)[0].(map[string]any)["cma_san"].(map[string]any)
	if code != 0 || san["matches_identity"] != false {
		t.Fatalf("exit %d SAN %v", code, san)
	}
	// Nothing listening: unavailable.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	if code, _, _ := fx.run(t, "attest", "--socket", dead); code != exitUnavailable {
		t.Fatalf("dead socket: exit %d", code)
	}
}

func cdatTable() []byte {
	return cdat.Build(1, 3, []cdat.Structure{{Type: cdat.TypeDSMAS, Body: make([]byte, 20)},
		{Type: cdat.TypeDSLBIS, Body: make([]byte, 20)}, {Type: cdat.TypeDSLBIS, Body: bytes.Repeat([]byte{1}, 20)},
		{Type: cdat.TypeDSEMTS, Body: make([]byte, 20)}})
}

func TestDOECLI(t *testing.T) {
	fx := newDevFixture(t)
	id := emu.Identity{Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, Revision: 1}
	good := doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, cdat.Handler(cdatTable()))
	fx.Add(t, "0000:0d:00.0", id, "", emu.NewConfigSpace(id, good))
	broken := cdatTable()
	broken[len(broken)-1] ^= 0x55
	fx.Add(t, "0000:0e:00.0", id, "", emu.NewConfigSpace(id, doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, cdat.Handler(broken))))
	owned := doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, cdat.Handler(cdatTable()))
	fx.Add(t, "0000:0f:00.0", id, "cxl_pci", emu.NewConfigSpace(id, owned))

	code, out, errs := fx.run(t, "doe", "discover", "0000:0d:00.0", "--lock-dir", fx.lockDir)
	if code != 0 || !strings.Contains(out, "discovery") || !strings.Contains(out, "1e98") || !strings.Contains(out, "cxl-cdat") {
		t.Fatalf("discover: exit %d %s\n%s", code, errs, out)
	}
	code, out, _ = fx.run(t, "doe", "discover", "0000:0d:00.0", "--lock-dir", fx.lockDir, "--json")
	var discDoc rpt.DOEDiscover
	err := json.Unmarshal([]byte(out), &discDoc)
	disc := discDoc.Mailboxes
	if err != nil || code != 0 || len(disc) != 1 || len(disc[0].Names) != 2 || disc[0].Names[1] != "cxl-cdat" {
		t.Fatalf("discover --json: exit %d %v %s", code, err, out)
	}

	code, out, errs = fx.run(t, "doe", "cdat", "0000:0d:00.0", "--lock-dir", fx.lockDir, "--json")
	var c rpt.CDAT
	if err := json.Unmarshal([]byte(out), &c); err != nil || code != 0 {
		t.Fatalf("cdat: exit %d %v %s\n%s", code, err, errs, out)
	}
	if c.Length != uint32(len(cdatTable())) || !c.ChecksumOK || c.Revision != 1 || c.Counts["DSLBIS"] != 2 || c.Counts["DSMAS"] != 1 || len(c.Structures) != 4 {
		t.Fatalf("cdat %+v", c)
	}
	code, out, _ = fx.run(t, "doe", "cdat", "0000:0d:00.0", "--lock-dir", fx.lockDir)
	if code != 0 || !strings.Contains(out, "checksum") || !strings.Contains(out, "DSEMTS") {
		t.Fatalf("cdat human: exit %d\n%s", code, out)
	}
	code, _, errs = fx.run(t, "doe", "cdat", "0000:0e:00.0", "--lock-dir", fx.lockDir)
	if code != exitAttestation || !strings.Contains(strings.ToLower(errs), "checksum") {
		t.Fatalf("bad checksum: exit %d %s", code, errs)
	}
	code, _, errs = fx.run(t, "doe", "cdat", "0000:0f:00.0", "--lock-dir", fx.lockDir)
	if code != exitUnavailable || !strings.Contains(errs, "cxl_pci") || owned.Stats().Reads != 0 || owned.Stats().Writes != 0 {
		t.Fatalf("cxl_pci bound: exit %d %s %+v", code, errs, owned.Stats())
	}
	fx.Tree.Lockdown("integrity")
	if code, _, _ := fx.run(t, "doe", "discover", "0000:0d:00.0", "--lock-dir", fx.lockDir); code != exitUnavailable {
		t.Fatalf("lockdown: exit %d", code)
	}
}

func TestPolicyCaptureLoadsAndAllows(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:01:00.0", emu.Config{})
	tampered := fx.addEmu(t, "0000:02:00.0", emu.Config{Profile: "tampered"})
	anchor := writeAnchor(t, d, false)
	code, out, errs := fx.run(t, "policy", "capture", "0000:01:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir, "--name", "acme nvme")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	for _, want := range []string{"vendor: 0x1b36", "device: [0x0010]", `min_version: "1.3"`, "asym: [ecdsa-p384]", "(verified this device's chain)",
		"reference:", "mutable-firmware (digest)", "min_svn:", "forbid_debug_mode: true", "require_signed: true", "name: acme-nvme"} {
		if !strings.Contains(out, want) {
			t.Errorf("capture lacks %q:\n%s", want, out)
		}
	}
	// capture -> file -> Load -> Evaluate the same device -> allow.
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(path, &policy.LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		t.Fatalf("captured policy does not load: %v\n%s", err, out)
	}
	sys, err := pci.Open(fx.dir, &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: func(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
		return fx.Configs[b], io.NopCloser(nil), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	for _, tc := range []struct {
		bdf   string
		dev   *emu.Device
		allow bool
		code  policy.Code
	}{{"0000:01:00.0", d, true, ""}, {"0000:02:00.0", tampered, false, policy.CodeMeasurementMismatch}} {
		b, _ := pci.ParseBDF(tc.bdf)
		f, err := sys.Function(b)
		if err != nil {
			t.Fatal(err)
		}
		roots := pol.TrustAnchors(attest.Identity{VendorID: f.VendorID, DeviceID: f.DeviceID, SubsystemVendorID: f.SubsystemVendorID,
			SubsystemID: f.SubsystemDeviceID, Class: f.Class, BDF: tc.bdf})
		if len(roots) == 0 {
			t.Fatal("captured rule has no anchors for the device")
		}
		ev, err := attest.Function(context.Background(), sys, b, &attest.Options{Roots: roots})
		if err != nil {
			t.Fatal(err)
		}
		v := pol.Evaluate(ev, policy.Input{Confidential: true})
		if v.Allow != tc.allow {
			t.Fatalf("%s: verdict %+v", tc.bdf, v)
		}
		if !tc.allow && (len(v.Reasons) == 0 || v.Reasons[0].Code != tc.code) {
			t.Fatalf("%s: reasons %+v, want %s", tc.bdf, v.Reasons, tc.code)
		}
	}
	// No anchor, or an attestation that fails: nothing is printed.
	if code, out, _ := fx.run(t, "policy", "capture", "0000:01:00.0", "--lock-dir", fx.lockDir); code != exitInternal || out != "" {
		t.Fatalf("without anchor: exit %d out %q", code, out)
	}
	if code, out, _ := fx.run(t, "policy", "capture", "0000:02:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir); code != 0 || !strings.Contains(out, "reference:") {
		t.Fatalf("tampered device with the same PKI still captures (the operator trusts it): exit %d", code)
	}
	fx.addEmu(t, "0000:03:00.0", emu.Config{Profile: "wrong-root"})
	if code, out, _ := fx.run(t, "policy", "capture", "0000:03:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir); code != exitAttestation || out != "" {
		t.Fatalf("wrong root: exit %d out %q", code, out)
	}
}
