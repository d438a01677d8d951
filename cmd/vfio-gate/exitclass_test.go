package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/policy"
)

// runWithPolicy runs the CLI against fx with a policy (owner check
// skipped), the TPM simulator and a private state dir.
func (fx *devFixture) runWithPolicy(t *testing.T, pol string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	e := &env{in: strings.NewReader(""), out: &out, errw: &errw, getenv: func(string) string { return "" },
		geteuid: func() int { return 0 }, configOpener: fx.Open, policyLoad: &policy.LoadOptions{SkipPermissionCheck: true}}
	state := t.TempDir()
	root := newRootCmd(e)
	root.SetArgs(append([]string{"--sysfs-root", fx.dir}, append(args, "--policy", pol, "--tpm", "sim:throwaway",
		"--state-dir", state, "--lock-dir", fx.lockDir)...))
	root.SetOut(&out)
	root.SetErr(&errw)
	code := report(&errw, root.ExecuteContext(context.Background()))
	return code, out.String(), errw.String()
}

// One table maps failure kind → reason code → exit class: check, explain
// and attest agree. A device whose signature is bad exits 2 from check as
// from attest (the CLI contract: attestation failed); a DOE discovery that
// times out is "unavailable" (4) with reason timeout, never no-cma.
func TestExitClassesAgree(t *testing.T) {
	fx := newDevFixture(t)
	good := fx.addEmu(t, "0000:01:00.0", emu.Config{})
	fx.addEmu(t, "0000:02:00.0", emu.Config{Profile: "bad-signature"})
	stuck := fx.addEmu(t, "0000:04:00.0", emu.Config{})
	stuck.Model().SetFault(doe.Fault{NeverReady: true})
	anchor := writeAnchor(t, good, false)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	id := good.Identity()
	if err := os.WriteFile(pol, fmt.Appendf(nil, `version: 1
mode: enforce
defaults: {confidential: deny-unattested, non_confidential: deny-unattested}
rules:
  - name: emu
    match: {vendor: 0x%04x}
    spdm: {trust_anchors: [%s]}
`, id.Vendor, anchor), 0o600); err != nil {
		t.Fatal(err)
	}
	reasons := func(out string) []string {
		var r struct {
			Devices []struct {
				Reasons []struct{ Code string } `json:"reasons"`
			} `json:"devices"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Devices) != 1 {
			t.Fatalf("output %v:\n%s", err, out)
		}
		var cs []string
		for _, x := range r.Devices[0].Reasons {
			cs = append(cs, x.Code)
		}
		return cs
	}

	if code, out, errs := fx.runWithPolicy(t, pol, "check", "--json", "0000:01:00.0"); code != exitOK {
		t.Fatalf("good device: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := fx.runWithPolicy(t, pol, "check", "--json", "0000:02:00.0")
	if rs := reasons(out); code != exitAttestation || strings.Join(rs, ",") != "signature-invalid" {
		t.Fatalf("check of a bad signature: exit %d reasons %v, want 2 signature-invalid\n%s", code, rs, errs)
	}
	if code, _, _ := fx.run(t, "attest", "0000:02:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir); code != exitAttestation {
		t.Fatalf("attest of a bad signature: exit %d, want 2", code)
	}
	for _, cmd := range []string{"explain", "check"} {
		code, out, errs := fx.runWithPolicy(t, pol, cmd, "--json", "--timeout", "3s", "0000:04:00.0")
		if rs := reasons(out); code != exitUnavailable || strings.Join(rs, ",") != "timeout" {
			t.Errorf("%s after a discovery timeout: exit %d reasons %v, want 4 timeout\n%s", cmd, code, rs, errs)
		}
	}
}

// The exit class of every attestation failure kind is the same for attest
// (no policy) and for check (the reason it denies with), except that what a
// policy denies for is, without a policy, an attestation failure.
func TestFailureExitMatchesDecisionsExit(t *testing.T) {
	for _, k := range attest.Kinds() {
		d := gate.Decision{Verdict: policy.Verdict{Decision: "deny", Reasons: []policy.Reason{{Code: policy.KindCode(k)}}}, Recorded: true}
		got, want := decisionsExit([]gate.Decision{d}), failureExit(&attest.Failure{Kind: k})
		if got == exitDenied {
			got = exitAttestation
		}
		if got != want {
			t.Errorf("kind %s: check exits %d, attest %d", k, got, want)
		}
	}
	// The attest command's documented classes.
	for k, want := range map[attest.Kind]int{attest.FailNoCMA: exitAttestation, attest.FailSignature: exitAttestation,
		attest.FailChain: exitAttestation, attest.FailTimeout: exitUnavailable, attest.FailMailboxOwned: exitUnavailable,
		attest.FailUnknown: exitAttestation, attest.Kind(200): exitAttestation} {
		if got := failureExit(&attest.Failure{Kind: k}); got != want {
			t.Errorf("attest exit for %s: %d, want %d", k, got, want)
		}
	}
}

// A function a platform TSM is connected to (tsm/connect names it) is not
// attested through DOE and not through the TSM either (the kernel's TSM ABI
// gives no evidence to user space: docs/architecture.md): check denies it
// mailbox-owned (exit 4), naming the TSM, without touching the mailbox.
func TestCheckTSMConnectedFunction(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:05:00.0", emu.Config{})
	if err := fx.Tree.Attr("0000:05:00.0", "tsm/connect", "tsm0\n"); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, fmt.Appendf(nil, `version: 1
mode: enforce
defaults: {confidential: deny-unattested, non_confidential: deny-unattested}
rules:
  - name: emu
    match: {vendor: 0x%04x}
    spdm: {trust_anchors: [%s]}
`, d.Identity().Vendor, writeAnchor(t, d, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := fx.runWithPolicy(t, pol, "check", "--json", "0000:05:00.0")
	if code != exitUnavailable || !strings.Contains(out, `"mailbox-owned"`) || !strings.Contains(out, "tsm0") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if st := d.Model().Stats(); st.Reads+st.Writes != 0 {
		t.Fatalf("mailbox touched: %+v", st)
	}
}
