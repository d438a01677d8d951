package demo

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// TestBuildServesTheDevices: the tree holds the three functions, the
// opener serves their config spaces (and nothing else), and the policy and
// anchors are written next to the tree.
func TestBuildServesTheDevices(t *testing.T) {
	w, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{w.Policy, filepath.Join(w.Dir, "emu-root.pem")} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, d := range w.Devices {
		if _, err := os.Stat(filepath.Join(w.Sysfs, "bus/pci/devices", d.BDF)); err != nil {
			t.Errorf("%s not in the tree: %v", d.BDF, err)
		}
		b, _ := pci.ParseBDF(d.BDF)
		if _, _, err := w.Opener(b); err != nil {
			t.Errorf("opener %s: %v", d.BDF, err)
		}
	}
	if _, _, err := w.Opener(pci.BDF{Bus: 9}); err == nil {
		t.Error("opener serves a function the demo does not have")
	}
}

// TestCompare: the expected outcomes hold only with the right decision,
// the right code, and the decision recorded.
func TestCompare(t *testing.T) {
	devs := Devices()
	decide := func(mutate func(i int, d *gate.Decision)) []gate.Decision {
		var ds []gate.Decision
		for i, d := range devs {
			b, _ := pci.ParseBDF(d.BDF)
			x := gate.Decision{BDF: b, Recorded: true, Verdict: policy.Verdict{Decision: d.WantDecision}}
			if d.WantCode != "" {
				x.Verdict.Reasons = []policy.Reason{{Code: d.WantCode}}
			}
			if mutate != nil {
				mutate(i, &x)
			}
			ds = append(ds, x)
		}
		return ds
	}
	if exps, ok := Compare(devs, decide(nil)); !ok || len(exps) != 3 || exps[1].Got != "deny (measurement-mismatch)" {
		t.Fatalf("as expected: ok %v %+v", ok, exps)
	}
	for name, m := range map[string]func(int, *gate.Decision){
		"other code":   func(i int, d *gate.Decision) { d.Verdict.Reasons = []policy.Reason{{Code: policy.CodeNoCMA}} },
		"not recorded": func(i int, d *gate.Decision) { d.Recorded = i != 0 },
		"allow denied": func(i int, d *gate.Decision) {
			if i == 0 {
				d.Verdict.Decision = policy.DecisionDeny
			}
		},
	} {
		if exps, ok := Compare(devs, decide(m)); ok {
			t.Errorf("%s: compared as expected: %+v", name, exps)
		}
	}
	if _, ok := Compare(devs, decide(nil)[:2]); ok {
		t.Error("a missing decision compared as expected")
	}
}

func TestWorldPaths(t *testing.T) {
	dir := t.TempDir()
	w, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	bdfs, err := w.BDFs()
	if err != nil || len(bdfs) != 3 || bdfs[0].String() != "0000:01:00.0" || bdfs[2].String() != "0000:03:00.0" {
		t.Fatalf("BDFs = %v, %v", bdfs, err)
	}
	if w.StateDir() != filepath.Join(dir, "state") || w.LockDir() != filepath.Join(dir, "locks") {
		t.Fatalf("state %q locks %q", w.StateDir(), w.LockDir())
	}
	bad := &World{Devices: []Device{{BDF: "nope"}}}
	if _, err := bad.BDFs(); err == nil {
		t.Fatal("a malformed BDF: no error")
	}
}

func TestStepsOK(t *testing.T) {
	if !StepsOK(nil) || !StepsOK([]HookStep{{OK: true}, {OK: true}}) || StepsOK([]HookStep{{OK: true}, {OK: false}}) {
		t.Fatal("StepsOK")
	}
}

func TestWorldGateSetup(t *testing.T) {
	w, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := gate.Setup{TPM: "tcp:127.0.0.1:2321", EventLog: "/x/events", StateDir: "/x", Timeout: time.Hour, Concurrency: 1,
		SysfsRoot: "/sys", Policy: "/etc/vfio-gate/policy.yaml", LockDir: "/run/vfio-gate/locks"}
	s := w.GateSetup(base)
	if s.SysfsRoot != w.Sysfs || s.Policy != w.Policy || s.LockDir != w.LockDir() {
		t.Errorf("paths: %q %q %q, want the world's", s.SysfsRoot, s.Policy, s.LockDir)
	}
	if s.PolicyLoad == nil || !s.PolicyLoad.SkipPermissionCheck || s.PCI.ConfigOpener == nil || s.PCI.Geteuid == nil || s.PCI.Geteuid() != 0 {
		t.Errorf("the world's policy load, opener or euid not set: %+v", s)
	}
	if s.Timeout != 10*time.Second || s.Concurrency != gate.DefaultConcurrency {
		t.Errorf("timeout %v, concurrency %d", s.Timeout, s.Concurrency)
	}
	if s.TPM != base.TPM || s.EventLog != base.EventLog || s.StateDir != base.StateDir {
		t.Errorf("TPM, log or state changed: %+v", s)
	}
}
