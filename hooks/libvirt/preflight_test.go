package libvirt_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func mustBDF(t *testing.T, s string) pci.BDF {
	t.Helper()
	b, err := pci.ParseBDF(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDomainManaged(t *testing.T) {
	a, b := mustBDF(t, "0000:01:00.0"), mustBDF(t, "0000:02:00.0")
	d := &lvhook.Domain{PCI: []lvhook.HostPCI{{BDF: a, Managed: true}, {BDF: b}, {BDF: a, Managed: true, Source: "interface"}}}
	if got := d.Managed(); len(got) != 1 || got[0] != a {
		t.Fatalf("Managed = %v", got)
	}
}

type fakeChecker struct {
	req  daemon.CheckRequest
	resp *daemon.CheckResponse
	err  error
}

func (f *fakeChecker) Check(_ context.Context, req daemon.CheckRequest) (*daemon.CheckResponse, error) {
	f.req = req
	return f.resp, f.err
}

// PreflightDaemon asks for a prepare-phase check with the managed
// functions, splits off the deferred ones and reads the daemon's tpm and
// bind reasons as errors.
func TestPreflightDaemon(t *testing.T) {
	a, b, c := mustBDF(t, "0000:01:00.0"), mustBDF(t, "0000:02:00.0"), mustBDF(t, "0000:03:00.0")
	dom := &lvhook.Domain{LaunchSecurity: "sev-snp", PCI: []lvhook.HostPCI{{BDF: a}, {BDF: b, Managed: true}, {BDF: c}}}
	f := &fakeChecker{resp: &daemon.CheckResponse{Decision: "deny", Devices: []daemon.DeviceDecision{
		{BDF: a, Decision: "allow", VendorID: 0x1b36, DeviceID: 0x10, Rule: "r", EvidenceDigest: "abcd"},
		{BDF: b, Decision: daemon.DecisionDeferred, Reasons: []daemon.Reason{{Code: daemon.CodeDeferred, Message: "later"}}},
		{BDF: c, Decision: "deny", Reasons: []daemon.Reason{{Code: "tpm", Message: "extend failed"}, {Code: "bind", Message: "probe"}}},
	}}}
	ds, def, err := lvhook.PreflightDaemon(t.Context(), f, dom, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.req.Phase != daemon.PhasePrepare || !f.req.Confidential || !f.req.Lock || f.req.LaunchSecurity != "sev-snp" ||
		len(f.req.BDFs) != 3 || len(f.req.Managed) != 1 || f.req.Managed[0] != b || f.req.Domain != "" {
		t.Fatalf("request %+v", f.req)
	}
	if len(def) != 1 || def[0] != (phase.Deferred{BDF: b, Message: "later"}) {
		t.Fatalf("deferred %+v", def)
	}
	if len(ds) != 2 || !ds[0].Allowed() || !ds[0].Recorded || ds[0].Identity.VendorID != 0x1b36 || ds[0].Verdict.Rule != "r" ||
		len(ds[0].EvidenceDigest) != 2 || ds[0].Verdict.Mode != policy.ModeEnforce {
		t.Fatalf("allow: %+v", ds)
	}
	if ds[1].Recorded || ds[1].Allowed() || ds[1].Err == nil || ds[1].Err.Error() != "probe" || len(ds[1].Verdict.Reasons) != 2 {
		t.Fatalf("tpm+bind deny: %+v", ds[1])
	}
	f.resp.Devices = f.resp.Devices[2:]
	f.resp.Devices[0].Reasons = f.resp.Devices[0].Reasons[:1]
	if ds, _, _ := lvhook.PreflightDaemon(t.Context(), f, dom, false); !errors.Is(ds[0].Err, tpm.ErrTPM) || ds[0].Err.Error() != "tpm: TPM error: extend failed" {
		t.Fatalf("tpm reason: %v", ds[0].Err)
	}
	f.err = daemon.ErrNotRunning
	if _, _, err := lvhook.PreflightDaemon(t.Context(), f, dom, false); !errors.Is(err, daemon.ErrNotRunning) {
		t.Fatalf("no daemon: %v", err)
	}
}

// PreflightGate on the demo's devices: a managed function on a host
// driver is deferred with phase's message, the others are checked; an
// unknown launchSecurity is a *LaunchSecurityError.
func TestPreflightGate(t *testing.T) {
	w, err := demo.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good, tampered, nic := mustBDF(t, w.Devices[0].BDF), mustBDF(t, w.Devices[1].BDF), mustBDF(t, w.Devices[2].BDF)
	if err := (&sysfstest.Tree{Dir: w.Sysfs}).Bind(nic.String(), "igb"); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(w.Dir, "state")
	h, err := gate.Open(gate.Setup{Policy: w.Policy, PolicyLoad: &policy.LoadOptions{SkipPermissionCheck: true}, TPM: gate.SimThrowaway,
		EventLog: filepath.Join(st, "events"), Evidence: filepath.Join(st, "evidence"), SysfsRoot: w.Sysfs,
		PCI: pci.Options{ConfigOpener: w.Opener, Geteuid: func() int { return 0 }}, LockDir: filepath.Join(w.Dir, "locks"), StateDir: st})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dom := &lvhook.Domain{LaunchSecurity: "sev-snp", PCI: []lvhook.HostPCI{{BDF: good, Managed: true}, {BDF: tampered}, {BDF: nic, Managed: true}}}
	ds, def, err := lvhook.PreflightGate(t.Context(), h, "vm1", dom, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(def) != 1 || def[0] != (phase.Deferred{BDF: nic, Message: phase.DeferredMessage("igb")}) {
		t.Fatalf("deferred %+v", def)
	}
	if len(ds) != 2 || ds[0].BDF != good || !ds[0].Allowed() || ds[1].BDF != tampered || ds[1].Allowed() {
		t.Fatalf("decisions %+v", ds)
	}
	dom.PCI = dom.PCI[2:]
	if ds, def, err := lvhook.PreflightGate(t.Context(), h, "vm1", dom, false); err != nil || ds != nil || len(def) != 1 {
		t.Fatalf("only deferred: %v %v %v", ds, def, err)
	}
	dom.LaunchSecurity = "bogus"
	_, _, err = lvhook.PreflightGate(t.Context(), h, "vm2", dom, false)
	var lse *lvhook.LaunchSecurityError
	if !errors.As(err, &lse) || lse.Domain != "vm2" || lse.Type != "bogus" {
		t.Fatalf("unknown launchSecurity: %v", err)
	}
}

// Preflight: the daemon's answer when it runs (the gate is not opened), a
// *DaemonError when it fails, and the in-process gate when none runs; the
// progress lines say which.
func TestPreflight(t *testing.T) {
	w, err := demo.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := mustBDF(t, w.Devices[0].BDF)
	dom := &lvhook.Domain{PCI: []lvhook.HostPCI{{BDF: good}}}
	opened := 0
	open := func() (*gate.Host, error) {
		opened++
		st := filepath.Join(w.Dir, "state")
		return gate.Open(gate.Setup{Policy: w.Policy, PolicyLoad: &policy.LoadOptions{SkipPermissionCheck: true}, TPM: gate.SimThrowaway,
			EventLog: filepath.Join(st, "events"), Evidence: filepath.Join(st, "evidence"), SysfsRoot: w.Sysfs,
			PCI: pci.Options{ConfigOpener: w.Opener, Geteuid: func() int { return 0 }}, LockDir: filepath.Join(w.Dir, "locks"), StateDir: st})
	}
	f := &fakeChecker{resp: &daemon.CheckResponse{Decision: "allow", Devices: []daemon.DeviceDecision{{BDF: good, Decision: "allow"}}}}
	var out strings.Builder
	ds, _, mode, err := lvhook.Preflight(t.Context(), f, "/run/d.sock", open, "vm1", dom, true, &out)
	if err != nil || len(ds) != 1 || !ds[0].Allowed() || mode != policy.ModeEnforce || opened != 0 ||
		out.String() != "vfio-gate: preflight of domain vm1: 1 host PCI function(s), confidential: true\nvfio-gate: decided by the daemon at /run/d.sock\n" {
		t.Fatalf("daemon: %+v %q %v, opened %d, %q", ds, mode, err, opened, out.String())
	}
	f.err = errors.New("daemon: 500: internal")
	_, _, _, err = lvhook.Preflight(t.Context(), f, "/run/d.sock", open, "vm1", dom, false, io.Discard)
	var de *lvhook.DaemonError
	if !errors.As(err, &de) || !errors.Is(err, f.err) || err.Error() != f.err.Error() || opened != 0 {
		t.Fatalf("failing daemon: %v, opened %d", err, opened)
	}
	f.err = daemon.ErrNotRunning
	out.Reset()
	ds, _, mode, err = lvhook.Preflight(t.Context(), f, "/run/d.sock", open, "vm1", dom, false, &out)
	if err != nil || len(ds) != 1 || ds[0].BDF != good || !ds[0].Allowed() || mode == "" || opened != 1 ||
		!strings.HasSuffix(out.String(), "\nvfio-gate: daemon not running: checking in-process\n") {
		t.Fatalf("in-process: %+v %q %v, opened %d, %q", ds, mode, err, opened, out.String())
	}
	openErr := errors.New("policy does not load")
	if _, _, _, err := lvhook.Preflight(t.Context(), f, "/run/d.sock", func() (*gate.Host, error) { return nil, openErr }, "vm1", dom, false, io.Discard); err != openErr {
		t.Fatalf("open failed: %v", err)
	}
}
