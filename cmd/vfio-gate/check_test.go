package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// demoEnv builds the demo's world in a temp dir and an env that serves its
// software devices, loads its policy without the owner check and lets
// config access run as non-root.
func demoEnv(t *testing.T) (*demo.World, *env, []string) {
	t.Helper()
	w, err := demo.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{in: strings.NewReader(""), getenv: func(string) string { return "" }, configOpener: w.Opener,
		policyLoad: &policy.LoadOptions{SkipPermissionCheck: true}, geteuid: func() int { return 0 }}
	state := t.TempDir()
	return w, e, []string{"--sysfs-root", w.Sysfs, "--policy", w.Policy, "--tpm", "sim:throwaway", "--state-dir", state,
		"--lock-dir", filepath.Join(state, "locks")}
}

func runEnv(t *testing.T, e *env, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	e.out, e.errw = &out, &errw
	code := execute(context.Background(), e, args)
	checkJSONOut(t, args, out.String())
	return code, out.String(), errw.String()
}

func TestCheckCLIJSONAndExitCodes(t *testing.T) {
	w, e, flags := demoEnv(t)
	good, bad, plain := w.Devices[0].BDF, w.Devices[1].BDF, w.Devices[2].BDF

	code, out, errs := runEnv(t, e, append([]string{"check", "--confidential", "--json", good, bad, plain}, flags...)...)
	if code != exitDenied {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "checking 3 functions") {
		t.Errorf("no progress on stderr: %q", errs)
	}
	// The contract keys, exactly.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	var decision string
	json.Unmarshal(raw["decision"], &decision)
	var devices []map[string]json.RawMessage
	if err := json.Unmarshal(raw["devices"], &devices); err != nil || decision != "deny" || len(devices) != 3 {
		t.Fatalf("decision %q devices %d: %v\n%s", decision, len(devices), err, out)
	}
	want := map[string]struct{ decision, code string }{good: {"allow", ""}, bad: {"deny", "measurement-mismatch"}, plain: {"deny", "no-cma"}}
	for _, d := range devices {
		for _, k := range []string{"bdf", "decision", "reasons", "rule", "evidence_digest"} {
			if _, ok := d[k]; !ok {
				t.Errorf("device lacks key %q: %v", k, d)
			}
		}
		var bdf, dec, digest string
		var reasons []map[string]string
		json.Unmarshal(d["bdf"], &bdf)
		json.Unmarshal(d["decision"], &dec)
		json.Unmarshal(d["evidence_digest"], &digest)
		json.Unmarshal(d["reasons"], &reasons)
		wd := want[bdf]
		var codes []string
		for _, r := range reasons {
			if r["code"] == "" || r["message"] == "" || len(r) != 2 {
				t.Errorf("%s: reason %v", bdf, r)
			}
			codes = append(codes, r["code"])
		}
		if dec != wd.decision || (wd.code == "" && len(codes) != 0) || (wd.code != "" && !slices.Contains(codes, wd.code)) || len(digest) != 64 {
			t.Errorf("%s: %s %v digest %q, want %s %s", bdf, dec, codes, digest, wd.decision, wd.code)
		}
	}

	// One good device: 0. A missing one: 4. Human output has the table.
	if code, out, errs := runEnv(t, e, append([]string{"check", "--confidential", good}, flags...)...); code != 0 || !strings.Contains(out, "allow") {
		t.Fatalf("good: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ := runEnv(t, e, append([]string{"check", "0000:0f:00.0"}, flags...)...); code != exitUnavailable || !strings.Contains(out, "no-device") {
		t.Fatalf("missing device: exit %d\n%s", code, out)
	}
	// Not confidential: the NIC is allowed unattested.
	if code, out, _ := runEnv(t, e, append([]string{"check", plain}, flags...)...); code != 0 {
		t.Fatalf("non-confidential NIC: exit %d\n%s", code, out)
	}
}

func TestCheckCLIRefusesWithoutPolicyAndFailsClosedOnTPM(t *testing.T) {
	w, e, flags := demoEnv(t)
	args := append([]string{"check", w.Devices[0].BDF}, flags...)
	// A missing policy: refuse to run (1).
	code, _, errs := runEnv(t, e, append(args, "--policy", filepath.Join(t.TempDir(), "none.yaml"))...)
	if code != exitInternal || !strings.Contains(errs, "none.yaml") {
		t.Fatalf("missing policy: exit %d %s", code, errs)
	}
	// An unusable TPM: 5, nothing decided.
	code, out, errs := runEnv(t, e, append(args, "--tpm", "tcp:127.0.0.1:1")...)
	if code != exitTPM || strings.Contains(out, "allow") {
		t.Fatalf("TPM down: exit %d\n%s\n%s", code, out, errs)
	}
	// Without the test hook a group/world-writable policy is refused (1).
	e.policyLoad = nil
	if err := os.Chmod(w.Policy, 0o666); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runEnv(t, e, args...)
	if code != exitInternal || !strings.Contains(errs, "unsafe file permissions") || strings.Contains(out, "allow") {
		t.Fatalf("insecure policy: exit %d\n%s\n%s", code, out, errs)
	}
}

func TestExplainCLI(t *testing.T) {
	w, e, flags := demoEnv(t)
	code, out, errs := runEnv(t, e, append([]string{"explain", "--confidential", w.Devices[1].BDF}, flags...)...)
	if code != exitDenied {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"CHECK", "EXPECTED", "GOT", "RESULT", "measurements.reference[2]", "FAIL", "measurements.reference[1]", "pass", "chain"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runEnv(t, e, append([]string{"explain", "--json", w.Devices[0].BDF}, flags...)...)
	var j rpt.Decisions
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || len(j.Devices) != 1 || len(j.Devices[0].Checks) < 5 {
		t.Fatalf("explain --json: exit %d %v\n%s", code, err, out)
	}
}

// bind: a denied device is not touched (3); an allowed one whose binding
// fails is 6 with the step named; release of a function vfio-gate did not
// bind is 6.
func TestBindReleaseCLI(t *testing.T) {
	w, e, flags := demoEnv(t)
	var writes []string
	e.vfioApply = &vfio.ApplyOptions{Write: func(name, value string) error {
		writes = append(writes, name+"="+value)
		return errors.New("injected: sysfs write refused")
	}}
	code, out, _ := runEnv(t, e, append([]string{"bind", "--confidential", w.Devices[1].BDF}, flags...)...)
	if code != exitDenied || len(writes) != 0 {
		t.Fatalf("bind tampered: exit %d writes %v\n%s", code, writes, out)
	}
	// vfio-pci is not "loaded" in the demo tree: the bind of the good device fails.
	code, out, _ = runEnv(t, e, append([]string{"bind", "--confidential", w.Devices[0].BDF}, flags...)...)
	if code != exitBind || !strings.Contains(out, "vfio-pci driver is not loaded") {
		t.Fatalf("bind good: exit %d\n%s", code, out)
	}
	code, out, _ = runEnv(t, e, append([]string{"release", w.Devices[0].BDF}, flags...)...)
	if code != exitBind || !strings.Contains(out, "not bound by vfio-gate") {
		t.Fatalf("release: exit %d\n%s", code, out)
	}
	// --json: the release document, and no error document after it (stdout
	// holds exactly one JSON document; runEnv validates it).
	code, out, _ = runEnv(t, e, append([]string{"release", "--json", w.Devices[0].BDF}, flags...)...)
	if code != exitBind || !strings.Contains(out, "not bound by vfio-gate") || strings.Contains(out, "vfio-gate/error/v1") {
		t.Fatalf("release --json: exit %d\n%s", code, out)
	}
}

func TestDemoCLI(t *testing.T) {
	code, out, errs := runCLI(t, "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"0000:01:00.0  1b36:0010  allow     demo-nvme  -",
		"0000:02:00.0  1b36:0010  deny      demo-nvme  measurement-mismatch",
		"0000:03:00.0  8086:10d3  deny      -          no-cma",
		"$ vfio-gate log verify", ": OK (", "demo: outcomes as expected",
		"  hook prepare begin   exit 0  TDI CONFIG_LOCKED ", "  hook started begin   exit 0  TDI RUN ",
		"  hook release end     exit 0  TDI CONFIG_UNLOCKED ", "    vfio-gate: DENY 0000:02:00.0 measurement-mismatch: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "demo", "--json")
	var j rpt.Demo
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || !j.AsExpected || j.Decision != "deny" || len(j.Devices) != 3 || !j.LogVerify.OK {
		t.Fatalf("demo --json: exit %d %v\n%s", code, err, out)
	}
	var got []string
	for _, x := range j.Libvirt {
		if !x.OK {
			t.Errorf("libvirt step not as expected: %+v", x)
		}
		got = append(got, fmt.Sprintf("%s %s %d %s", x.Domain, x.Op, x.Exit, x.TDIState))
	}
	want := []string{"cvm prepare begin 0 CONFIG_LOCKED", "cvm start begin 0 CONFIG_LOCKED", "cvm started begin 0 RUN",
		"cvm release end 0 CONFIG_UNLOCKED", "cvm-tampered prepare begin 1 CONFIG_UNLOCKED", "cvm-tampered release end 0 CONFIG_UNLOCKED"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("libvirt steps %q, want %q", got, want)
	}
}

// The demo against a real swtpm and a given state directory.
func TestDemoSwtpm(t *testing.T) {
	testutil.Require(t, testutil.Swtpm)
	sw := testutil.StartSwtpm(t, false)
	state := t.TempDir()
	code, out, errs := runCLI(t, "demo", "--tpm", sw.Spec, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "TPM:    "+sw.Spec) || !strings.Contains(out, ": OK (") {
		t.Fatalf("demo on swtpm: exit %d\n%s\n%s", code, out, errs)
	}
	// The log stays in --state-dir and verifies again from the CLI.
	code, out, errs = runCLI(t, "log", "verify", "--tpm", sw.Spec, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("log verify: exit %d\n%s\n%s", code, out, errs)
	}
}

func TestDecisionsExitPriority(t *testing.T) {
	allow := gate.Decision{Verdict: policy.Verdict{Decision: "allow", Allow: true}, Recorded: true}
	deny := func(c policy.Code) gate.Decision {
		return gate.Decision{Verdict: policy.Verdict{Decision: "deny", Reasons: []policy.Reason{{Code: c}}}, Recorded: true}
	}
	tpmFail := deny(gate.CodeTPM)
	tpmFail.Recorded, tpmFail.Err = false, &tpm.Error{Op: "extend", Err: errors.New("x")}
	bindFail := allow
	bindFail.Err = &vfio.BindError{Step: vfio.StepProbe, Err: errors.New("x")}
	audit := gate.Decision{Verdict: policy.Verdict{Decision: "allow", Allow: true, WouldDeny: true,
		Reasons: []policy.Reason{{Code: policy.CodeMeasurementMismatch}}}, Recorded: true}
	cases := []struct {
		ds   []gate.Decision
		want int
	}{
		{nil, exitOK},
		{[]gate.Decision{allow, audit}, exitOK},
		{[]gate.Decision{allow, deny(policy.CodeTimeout), deny(gate.CodeNoDevice)}, exitUnavailable},
		{[]gate.Decision{deny(policy.CodeTimeout), deny(policy.CodeMeasurementMismatch)}, exitDenied},
		{[]gate.Decision{allow, deny(policy.CodeSignatureInvalid)}, exitAttestation},
		{[]gate.Decision{deny(policy.CodeTimeout), deny(policy.CodeChainUntrusted)}, exitAttestation},
		{[]gate.Decision{deny(policy.CodeProtocol), deny(policy.CodeMeasurementMismatch)}, exitDenied},
		{[]gate.Decision{deny(policy.Code("made-up"))}, exitDenied},
		{[]gate.Decision{deny(policy.CodeNoCMA), bindFail}, exitBind},
		{[]gate.Decision{bindFail, tpmFail, deny(policy.CodeNoCMA)}, exitTPM},
	}
	for i, c := range cases {
		if got := decisionsExit(c.ds); got != c.want {
			t.Errorf("case %d: exit %d, want %d", i, got, c.want)
		}
	}
}

// check --socket: a software device behind spdm-socket, gated with the
// demo policy; identity from --pci-id or from the CMA SAN.
func TestCheckSocketCLI(t *testing.T) {
	_, e, flags := demoEnv(t)
	for _, c := range []struct {
		profile string
		args    []string
		code    int
	}{
		{"good", []string{"--pci-id", "1b36:0010"}, exitOK},
		{"good", nil, exitOK},
		{"tampered", nil, exitDenied},
	} {
		d, err := emu.New(emu.Config{Identity: demo.Devices()[0].ID, Profile: c.profile, Algorithms: spdm.AsymECDSAP384})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go socket.Serve(ctx, ln, d.Features(), d.Handler())
		args := append(append([]string{"check", "--confidential", "--json", "--socket", ln.Addr().String()}, c.args...), flags...)
		code, out, errs := runEnv(t, e, args...)
		cancel()
		ln.Close()
		var j rpt.Decisions
		if err := json.Unmarshal([]byte(out), &j); code != c.code || err != nil || len(j.Devices) != 1 || j.Devices[0].Socket != ln.Addr().String() || j.Devices[0].Rule != "demo-nvme" {
			t.Fatalf("%s %v: exit %d %v\n%s\n%s", c.profile, c.args, code, err, out, errs)
		}
	}
	if code, _, _ := runEnv(t, e, append([]string{"check", "--pci-id", "1b36:0010", "0000:01:00.0"}, flags...)...); code != exitInternal {
		t.Fatalf("--pci-id without --socket: exit %d", code)
	}
}

// check --audit where the eBPF audit cannot run (no root, BTF or kprobes:
// this test skips where it can) exits 4 with the audit's reason and decides
// nothing: the operator asked for the tamper check.
func TestCheckAuditUnavailable(t *testing.T) {
	if testutil.Kprobes.Probe() == nil && os.Geteuid() == 0 {
		t.Skip("kprobes and root are here: the audit can attach (proven in test/vm)")
	}
	w, e, flags := demoEnv(t)
	code, out, errs := runEnv(t, e, append([]string{"check", "--audit", "--json", w.Devices[0].BDF}, flags...)...)
	if code != exitUnavailable || !strings.Contains(errs, "audit") || strings.Contains(out, `"decision"`) {
		t.Fatalf("check --audit without kprobes: exit %d, out %q, err %q; want exit 4 naming the audit", code, out, errs)
	}
	t.Logf("stderr: %s", errs)
}

// The daemon takes the same --audit: without kprobes it refuses to start
// (exit 4) rather than run without the tamper signal it was asked for.
func TestDaemonAuditUnavailable(t *testing.T) {
	if testutil.Kprobes.Probe() == nil && os.Geteuid() == 0 {
		t.Skip("kprobes and root are here: the audit can attach (proven in test/vm)")
	}
	_, e, flags := demoEnv(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	code, _, errs := runEnv(t, e, append([]string{"daemon", "--audit", "--no-libvirt", "--daemon-socket", sock}, flags...)...)
	if code != exitUnavailable || !strings.Contains(errs, "audit") {
		t.Fatalf("daemon --audit without kprobes: exit %d, err %q; want exit 4 naming the audit", code, errs)
	}
}
