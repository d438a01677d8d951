package audit_test

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// TestLayoutOf: the DOE mailbox of a function in a sysfs tree is found
// from its config file; a function that is not there has no layout.
func TestLayoutOf(t *testing.T) {
	dir := t.TempDir()
	tree, err := sysfstest.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := emu.New(emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := dev.ConfigSpace().Snapshot()
	if err := tree.Add(sysfstest.Function{BDF: "0000:01:00.0", Vendor: 0x1b36, Device: 0x0010, Config: cfg, IOMMUGroup: 1}); err != nil {
		t.Fatal(err)
	}
	caps, err := pci.ExtCapabilities(dev.ConfigSpace())
	if err != nil {
		t.Fatal(err)
	}
	want := pci.FindExt(caps, pci.ExtCapIDDOE)
	l := audit.LayoutOf(dir, pci.BDF{Bus: 1})
	if len(want) == 0 || len(l.DOE) != len(want) || l.DOE[0] != want[0] {
		t.Fatalf("layout %+v, want DOE at %v", l, want)
	}
	if l := audit.LayoutOf(dir, pci.BDF{Bus: 0x7f}); len(l.DOE) != 0 || l.MSIX != 0 {
		t.Fatalf("missing function: %+v", l)
	}
}

// TestLayouts: each function named is keyed by its canonical BDF; a name
// that is not a BDF is an error.
func TestLayouts(t *testing.T) {
	dir := t.TempDir()
	ls, err := audit.Layouts(dir, []string{"0000:3B:00.0", "0000:02:00.1"})
	if _, ok := ls["0000:3b:00.0"]; err != nil || len(ls) != 2 || !ok {
		t.Fatalf("Layouts = %v, %v", ls, err)
	}
	if _, err := audit.Layouts(dir, []string{"0000:01:00.0", "nvme0"}); err == nil {
		t.Fatal("a name that is not a BDF")
	}
}

func TestParseMode(t *testing.T) {
	for s, want := range map[string]audit.Mode{"auto": audit.ModeAuto, "fentry": audit.ModeFentry, "kprobe": audit.ModeKprobe, "kprobe-multi": audit.ModeKprobeMulti} {
		if m, ok := audit.ParseMode(s); !ok || m != want {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, ok)
		}
	}
	for _, s := range []string{"", "Fentry", "kretprobe", "kprobe.multi"} {
		if _, ok := audit.ParseMode(s); ok {
			t.Errorf("ParseMode(%q) ok", s)
		}
	}
}
