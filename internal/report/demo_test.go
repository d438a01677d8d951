package report

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/demo"
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
