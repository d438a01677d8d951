package report

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func TestWriteDemoWorld(t *testing.T) {
	world := &demo.World{Sysfs: "/tmp/d/sys", Policy: "/tmp/d/policy.yaml", Devices: demo.Devices()[:2]}
	var w strings.Builder
	WriteDemoWorld(&w, world, "sim:throwaway", "/tmp/d/state/events")
	want := "vfio-gate demo: three software PCIe functions in a temporary sysfs tree (/tmp/d/sys)\n" +
		"  0000:01:00.0  1b36:0010  " + world.Devices[0].What + "\n" +
		"  0000:02:00.0  1b36:0010  " + world.Devices[1].What + "\n" +
		"policy: /tmp/d/policy.yaml (rule demo-nvme pins the good firmware; demo mode: file owner/mode not checked)\n" +
		"TPM:    sim:throwaway, event log /tmp/d/state/events\n\n" +
		"$ vfio-gate check --confidential 0000:01:00.0 0000:02:00.0\n"
	if w.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", w.String(), want)
	}
}

func TestWriteDemoOutcomes(t *testing.T) {
	var w strings.Builder
	WriteDemoOutcomes(&w, []demo.Expectation{
		{BDF: "0000:01:00.0", Decision: "allow", Got: "allow", OK: true},
		{BDF: "0000:02:00.0", Decision: "deny", Code: "measurement-mismatch", Got: "allow"},
	}, []demo.HookStep{
		{Domain: "cvm", Op: "prepare begin", Want: "exit 0, TDI locked", Exit: 0, TDIState: "locked", OK: true},
		{Domain: "cvm-tampered", Op: "prepare begin", Want: "exit 1, TDI unlocked", Exit: 0, TDIState: "locked"},
	})
	want := "\n" +
		"ok       0000:01:00.0: expected allow, got allow\n" +
		"UNEXPECTED 0000:02:00.0: expected deny (measurement-mismatch), got allow\n" +
		"ok       libvirt cvm prepare begin: expected exit 0, TDI locked, got exit 0, TDI locked\n" +
		"UNEXPECTED libvirt cvm-tampered prepare begin: expected exit 1, TDI unlocked, got exit 0, TDI locked\n"
	if w.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", w.String(), want)
	}
}

func TestDemoOf(t *testing.T) {
	world := &demo.World{Sysfs: "/tmp/d/sys", Policy: "/tmp/d/policy.yaml"}
	r := &demo.Result{Decisions: []gate.Decision{{BDF: pci.BDF{Bus: 1}, Recorded: true, Verdict: policy.Verdict{Decision: "allow", Allow: true}}},
		Expected: []demo.Expectation{{BDF: "0000:01:00.0", OK: true}}, Libvirt: []demo.HookStep{{Domain: "cvm", OK: true}},
		LogVerify: &tpm.VerifyResult{OK: true, Records: 4}, OK: true}
	b, err := JSONDoc("demo", DemoOf(r, world, policy.ModeEnforce, "sim:throwaway", "/tmp/d/state/events"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"schema":"vfio-gate/demo/v1","decision":"allow","mode":"enforce","devices":[{"bdf":"0000:01:00.0"`,
		`"as_expected":true,"expected":[{`, `"libvirt":[{"domain":"cvm"`, `"log_verify":{"ok":true`,
		`"sysfs_root":"/tmp/d/sys","policy":"/tmp/d/policy.yaml","event_log":"/tmp/d/state/events","tpm":"sim:throwaway"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("demo document lacks %s:\n%s", want, b)
		}
	}
	r.OK = false
	if d := DemoOf(r, world, policy.ModeEnforce, "", ""); d.AsExpected {
		t.Error("as_expected with an unexpected outcome")
	}
}
