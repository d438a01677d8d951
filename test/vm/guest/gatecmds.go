//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The guest's policy (README "Policy file"): non-CMA devices never reach a
// confidential VM; a non-confidential VM may get them, except the second edu
// function, whose rule demands SPDM (it has no DOE, so it is denied) — the
// denied member of the edu functions' shared IOMMU group.
const policyTemplate = `version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: allow-unattested
rules:
  - name: edu-fn1-needs-spdm
    match: {bdf: "%s"}
    spdm:
      trust_anchors: [anchor.pem]
`

// policyDir holds the guest's policy: root-owned, mode 0700, as the policy
// loader demands.
const policyDir = "/etc/vfio-gate"

// writePolicy writes the policy and a throwaway trust anchor (the rule that
// uses it can never be satisfied: no device in the guest speaks SPDM).
func (h *Harness) writePolicy() (string, error) {
	if h.policy != "" {
		return h.policy, nil
	}
	edus, err := h.find(isEdu)
	if err != nil {
		return "", err
	}
	if len(edus) != 2 {
		return "", fmt.Errorf("want 2 edu functions, found %d", len(edus))
	}
	if err := os.MkdirAll(policyDir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(policyDir, 0o700); err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test/vm throwaway root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(policyDir, "anchor.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	p := filepath.Join(policyDir, "policy.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(policyTemplate, edus[1].BDF)), 0o600); err != nil {
		return "", err
	}
	if err := os.MkdirAll(h.State, 0o700); err != nil {
		return "", err
	}
	h.policy = p
	return p, nil
}

// gate runs a vfio-gate command with the guest's policy, /dev/tpmrm0 and state.
func (h *Harness) gate(ctx context.Context, args ...string) (stdout, stderr string, code int, err error) {
	p, err := h.writePolicy()
	if err != nil {
		return "", "", 0, fmt.Errorf("policy: %w", err)
	}
	g := []string{"--policy", p, "--tpm", filepath.Join(h.Dev, "tpmrm0"), "--state-dir", h.State}
	stdout, stderr, code = h.run(ctx, append(g, args...)...)
	return stdout, stderr, code, nil
}

// checkOut is the part of check/bind --json these scenarios read.
type checkOut struct {
	Decision string `json:"decision"`
	Devices  []struct {
		BDF      string `json:"bdf"`
		Decision string `json:"decision"`
		Reasons  []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"reasons"`
		Rule           string `json:"rule"`
		EvidenceDigest string `json:"evidence_digest"`
		Recorded       bool   `json:"recorded"`
	} `json:"devices"`
}

func (c *checkOut) codes() []string {
	var out []string
	for _, d := range c.Devices {
		for _, r := range d.Reasons {
			out = append(out, r.Code)
		}
	}
	return out
}

// gateJSON runs a gate command with --json and decodes its output.
func (h *Harness) gateJSON(ctx context.Context, args ...string) (*checkOut, int, string, error) {
	out, errOut, code, err := h.gate(ctx, append(args, "--json")...)
	if err != nil {
		return nil, code, errOut, err
	}
	var c checkOut
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return nil, code, errOut, fmt.Errorf("vfio-gate %s: exit %d, output is not JSON (%v): %q, stderr %q", strings.Join(args, " "), code, err, out, errOut)
	}
	return &c, code, errOut, nil
}

// checkConfidentialDeny (issue 8 scenario 3): `check --confidential` of the
// CXL function (DOE with discovery and CDAT only, no CMA) under
// deny-unattested → deny no-cma, exit 3, recorded in the TPM, nothing bound.
// Runs with the CXL function unbound (kernel-doe-discovery).
func checkConfidentialDeny(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "check"); r != nil {
		return *r
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	c, code, errOut, err := h.gateJSON(ctx, "check", "--confidential", f.BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code != 3 || c.Decision != "deny" || len(c.Devices) != 1 || !slices.Contains(c.codes(), "no-cma") || !c.Devices[0].Recorded {
		return failf("check --confidential %s: exit %d, %+v, stderr %q; want exit 3, deny no-cma, recorded", f.BDF, code, c, errOut)
	}
	if after, _ := h.function(f.BDF); after == nil || after.Driver != f.Driver {
		return failf("%s: driver changed by check", f.BDF)
	}
	return passf("%s: deny %v (exit 3), recorded, nothing bound", f.BDF, c.codes())
}

// checkAllowUnattested (issue 8 scenario 3): the same function for a
// non-confidential VM under allow-unattested → allow, exit 0.
func checkAllowUnattested(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "check"); r != nil {
		return *r
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	c, code, errOut, err := h.gateJSON(ctx, "check", f.BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code != 0 || c.Decision != "allow" || len(c.Devices) != 1 || c.Devices[0].Decision != "allow" || !c.Devices[0].Recorded {
		return failf("check %s: exit %d, %+v, stderr %q; want exit 0, allow, recorded", f.BDF, code, c, errOut)
	}
	if after, _ := h.function(f.BDF); after == nil || after.Driver != "" {
		return failf("%s: check bound a driver", f.BDF)
	}
	return passf("%s: allow (non-confidential, allow-unattested), recorded, nothing bound", f.BDF)
}

// bindRelease (issue 8 scenario 4): `bind` of the e1000e (allowed) ends on
// vfio-pci with /dev/vfio/N; `release` gives it back to e1000e.
func bindRelease(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "bind", "release"); r != nil {
		return *r
	}
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 10*time.Second); err != nil {
		return failf("%v", err)
	}
	c, code, errOut, err := h.gateJSON(ctx, "bind", nic.BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code != 0 || c.Decision != "allow" {
		return failf("bind %s: exit %d, %+v, stderr %q", nic.BDF, code, c, errOut)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "vfio-pci", 5*time.Second); err != nil {
		return failf("after bind: %v", err)
	}
	dev := filepath.Join(h.Dev, "vfio", nic.IOMMUGroup)
	if err := waitPath(ctx, dev, 5*time.Second); err != nil {
		return failf("after bind: %v", err)
	}
	flags, err := vfioGroupFlags(dev)
	if err != nil || flags&vfioGroupFlagViable == 0 {
		return failf("after bind: %s flags 0x%x, %v", dev, flags, err)
	}
	out, errOut, code, err := h.gate(ctx, "release", nic.BDF)
	if err != nil || code != 0 {
		return failf("release %s: exit %d, %v: %s %s", nic.BDF, code, err, out, errOut)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 10*time.Second); err != nil {
		return failf("after release: %v", err)
	}
	return passf("%s: bind -> vfio-pci (%s viable) -> release -> e1000e", nic.BDF, dev)
}

// bindGroupDenied (issue 8 scenario 4): the two edu functions share an IOMMU
// group; the policy allows the first and denies the second, so `bind` of the
// first binds nothing (iommu-group-unsafe) and leaves both untouched.
func bindGroupDenied(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "bind"); r != nil {
		return *r
	}
	edus, err := h.find(isEdu)
	if err != nil || len(edus) != 2 {
		return failf("want 2 edu functions: %v", err)
	}
	c, code, errOut, err := h.gateJSON(ctx, "bind", edus[0].BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code != 3 || c.Decision != "deny" || !slices.Contains(c.codes(), "iommu-group-unsafe") {
		return failf("bind %s: exit %d, %+v, stderr %q; want exit 3, deny iommu-group-unsafe", edus[0].BDF, code, c, errOut)
	}
	for _, e := range edus {
		after, err := h.function(e.BDF)
		if err != nil {
			return failf("%v", err)
		}
		ov, _ := readTrim(h.devPath(e.BDF, "driver_override"))
		if after.Driver != e.Driver || ov != "(null)" {
			return failf("%s: driver %q (was %q), driver_override %q after a denied group bind", e.BDF, after.Driver, e.Driver, ov)
		}
	}
	return passf("bind %s: deny %v (exit 3); %s and %s untouched", edus[0].BDF, c.codes(), edus[0].BDF, edus[1].BDF)
}

// logVerify (issue 8 scenario 5): the decisions above were extended into the
// PCR through /dev/tpmrm0 (tpm_crb -> QEMU -> swtpm) and logged; `log
// verify` replays the log against the TPM and passes; a tampered log line
// fails it; the restored log passes again.
func logVerify(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "check", "log verify"); r != nil {
		return *r
	}
	// The newest segment of the newest boot (zero-padded names sort).
	segs, _ := filepath.Glob(filepath.Join(h.State, "events", "boot-*", "seg-*.cel.jsonl"))
	if len(segs) == 0 {
		return failf("no event log segment after the gate scenarios")
	}
	slices.Sort(segs)
	logPath := segs[len(segs)-1]
	orig, err := os.ReadFile(logPath)
	if err != nil {
		return failf("no event log after the gate scenarios: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(orig), "\n"), "\n")
	out, errOut, code, err := h.gate(ctx, "log", "verify")
	if err != nil || code != 0 {
		return failf("log verify of %d records: exit %d, %v: %s %s", len(lines), code, err, out, errOut)
	}
	// Tamper: change one hex digit of the first digest in the log.
	bad := append([]string(nil), lines...)
	at := -1
	for i, l := range lines {
		if t, ok := flipHexDigit(l); ok {
			bad[i], at = t, i
			break
		}
	}
	if at < 0 {
		return failf("no record with a digest to tamper with among %d", len(lines))
	}
	if err := os.WriteFile(logPath, []byte(strings.Join(bad, "\n")+"\n"), 0o600); err != nil {
		return failf("%v", err)
	}
	tout, terr, tcode, _ := h.gate(ctx, "log", "verify")
	if err := os.WriteFile(logPath, orig, 0o600); err != nil {
		return failf("restore log: %v", err)
	}
	if tcode == 0 {
		return failf("log verify passed a tampered log: %s %s", tout, terr)
	}
	if _, _, code, _ := h.gate(ctx, "log", "verify"); code != 0 {
		return failf("log verify of the restored log: exit %d", code)
	}
	return passf("log verify: %d records replay to the PCR through /dev/tpmrm0; tampered record %d -> exit %d (%s)", len(lines), at+1, tcode, firstLine(terr+tout))
}

// flipHexDigit changes the first hex digit of the first "digest" value in a
// CEL-JSON record.
func flipHexDigit(line string) (string, bool) {
	i := strings.Index(line, `"digest":"`)
	if i < 0 {
		return "", false
	}
	j := i + len(`"digest":"`)
	if j >= len(line) {
		return "", false
	}
	c := line[j]
	var r byte
	switch {
	case c == '0':
		r = '1'
	case (c >= '1' && c <= '9') || (c >= 'a' && c <= 'f'):
		r = '0'
	default:
		return "", false
	}
	return line[:j] + string(r) + line[j+1:], true
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// checkLockdown (lockdown boot, issue 8 scenario 7): `check --confidential`
// of the CXL function denies with reason lockdown.
func checkLockdown(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "check"); r != nil {
		return *r
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if err := h.unbind(ctx, f.BDF); err != nil {
		return failf("%v", err)
	}
	c, code, errOut, err := h.gateJSON(ctx, "check", "--confidential", f.BDF)
	if err != nil {
		return failf("%v", err)
	}
	if code == 0 || c.Decision != "deny" || !slices.Contains(c.codes(), "lockdown") {
		return failf("check --confidential %s under lockdown: exit %d, decision %s, reason codes %v (want lockdown); stderr %q", f.BDF, code, c.Decision, c.codes(), errOut)
	}
	return passf("%s under lockdown=integrity: deny %v (exit %d)", f.BDF, c.codes(), code)
}
