package vfio_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// fakeKernel plays the kernel's side of the sysfs files vfio writes, on a
// sysfstest tree whose files are plain files: it moves driver links as the
// PCI core would and creates /dev/vfio/N when vfio-pci binds a group member.
type fakeKernel struct {
	t      *testing.T
	tree   *sysfstest.Tree
	devDir string
	// fail makes a write return an error: key "path=value".
	fail map[string]error
	// ignoreOverride: drivers_probe binds the default driver (a kernel without driver_override support).
	ignoreOverride bool
	// noDevNode: never create /dev/vfio/N.
	noDevNode bool
	// defaults is the driver drivers_probe picks when there is no override.
	defaults map[string]string

	mu     sync.Mutex
	writes []string
}

func newKernel(t *testing.T, tree *sysfstest.Tree) *fakeKernel {
	dev := filepath.Join(t.TempDir(), "dev-vfio")
	if err := os.Mkdir(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeKernel{t: t, tree: tree, devDir: dev, fail: map[string]error{}, defaults: map[string]string{}}
}

func (k *fakeKernel) log() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.writes...)
}

func (k *fakeKernel) driverOf(bdf string) string {
	t, err := os.Readlink(filepath.Join(k.tree.Dir, sysfstest.DevicePath(bdf), "driver"))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

func (k *fakeKernel) override(bdf string) string {
	b, _ := os.ReadFile(filepath.Join(k.tree.Dir, sysfstest.DevicePath(bdf), "driver_override"))
	s := strings.TrimSpace(string(b))
	if s == "(null)" {
		return ""
	}
	return s
}

func (k *fakeKernel) group(bdf string) int {
	t, err := os.Readlink(filepath.Join(k.tree.Dir, sysfstest.DevicePath(bdf), "iommu_group"))
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(filepath.Base(t))
	return n
}

func (k *fakeKernel) bind(bdf, drv string) error {
	if !exists(filepath.Join(k.tree.Dir, "bus/pci/drivers", drv)) {
		return syscall.ENODEV
	}
	if err := k.tree.Bind(bdf, drv); err != nil {
		return err
	}
	if drv == "vfio-pci" && !k.noDevNode {
		if g := k.group(bdf); g >= 0 {
			return os.WriteFile(filepath.Join(k.devDir, strconv.Itoa(g)), nil, 0o600)
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Write is vfio.ApplyOptions.Write.
func (k *fakeKernel) Write(name, value string) error {
	k.mu.Lock()
	k.writes = append(k.writes, name+"="+value)
	k.mu.Unlock()
	if err := k.fail[name+"="+value]; err != nil {
		return &os.PathError{Op: "write", Path: name, Err: err}
	}
	parts := strings.Split(name, "/")
	switch {
	case strings.HasSuffix(name, "/new_id"):
		k.t.Errorf("new_id written: %s", name)
		return syscall.EPERM
	case len(parts) == 5 && parts[0] == "bus" && parts[3] != "" && parts[4] == "driver_override":
		v := strings.TrimSpace(value)
		if v == "" {
			v = "(null)"
		}
		return os.WriteFile(filepath.Join(k.tree.Dir, sysfstest.DevicePath(parts[3]), "driver_override"), []byte(v+"\n"), 0o644)
	case name == "bus/pci/drivers_probe":
		if k.driverOf(value) != "" {
			return nil // already bound: the kernel does nothing
		}
		drv := k.override(value)
		if drv == "" || k.ignoreOverride {
			drv = k.defaults[value]
		}
		if drv == "" {
			return nil
		}
		return k.bind(value, drv)
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "unbind":
		if k.driverOf(value) != parts[3] {
			return syscall.ENODEV
		}
		g := k.group(value)
		if err := k.tree.Unbind(value); err != nil {
			return err
		}
		if parts[3] == "vfio-pci" && g >= 0 {
			_ = os.Remove(filepath.Join(k.devDir, strconv.Itoa(g)))
		}
		return nil
	case len(parts) == 5 && parts[2] == "drivers" && parts[4] == "bind":
		if k.driverOf(value) != "" {
			return syscall.EBUSY
		}
		if ov := k.override(value); ov != "" && ov != parts[3] {
			return syscall.ENODEV // the kernel refuses a bind against driver_override
		}
		return k.bind(value, parts[3])
	}
	k.t.Errorf("unexpected write %s=%q", name, value)
	return errors.New("unexpected write")
}

// fixture builds: group 1 = 3b:00.0 (ixgbe) + 3b:00.1 (ixgbe); group 2 =
// 5e:00.0 (nvme) + bridge 5d:00.0 (pcieport, class 0x060400); group 3 =
// 70:00.0 (no driver); 80:00.0 has no IOMMU group; 90:00.0 is on vfio-pci in group 9.
func fixture(t *testing.T) (*sysfstest.Tree, *pci.Root, *fakeKernel) {
	t.Helper()
	tree, err := sysfstest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []sysfstest.Function{
		{BDF: "0000:3b:00.0", Vendor: 0x8086, Device: 0x10fb, Class: 0x020000, Driver: "ixgbe", IOMMUGroup: 1},
		{BDF: "0000:3b:00.1", Vendor: 0x8086, Device: 0x10fb, Class: 0x020000, Driver: "ixgbe", IOMMUGroup: 1},
		{BDF: "0000:5d:00.0", Vendor: 0x8086, Device: 0x2030, Class: 0x060400, Driver: "pcieport", IOMMUGroup: 2},
		{BDF: "0000:5e:00.0", Vendor: 0x144d, Device: 0xa808, Class: 0x010802, Driver: "nvme", IOMMUGroup: 2},
		{BDF: "0000:70:00.0", Vendor: 0x1234, Device: 0x5678, Class: 0x120000, IOMMUGroup: 3},
		{BDF: "0000:80:00.0", Vendor: 0x1234, Device: 0x5678, Class: 0x020000, Driver: "e1000e", IOMMUGroup: -1},
		{BDF: "0000:90:00.0", Vendor: 0x1234, Device: 0x5678, Class: 0x020000, Driver: "vfio-pci", IOMMUGroup: 9},
	} {
		if err := tree.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := tree.Driver("vfio-pci"); err != nil {
		t.Fatal(err)
	}
	root, err := pci.OpenRoot(tree.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	k := newKernel(t, tree)
	k.defaults = map[string]string{"0000:3b:00.0": "ixgbe", "0000:3b:00.1": "ixgbe", "0000:5e:00.0": "nvme"}
	return tree, root, k
}

func bdf(t *testing.T, s string) pci.BDF {
	t.Helper()
	b, err := pci.ParseBDF(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bdfs(t *testing.T, ss ...string) []pci.BDF {
	var out []pci.BDF
	for _, s := range ss {
		out = append(out, bdf(t, s))
	}
	return out
}

func bridgeExempt(_ pci.BDF, class uint32) bool { return class>>8 == 0x0604 }

var _ = fmt.Sprint
