package pci_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// These tests read this machine's /sys. They never write: config files are
// opened with OpenConfigReadOnly.

func realSys(t *testing.T) *pci.System {
	t.Helper()
	if _, err := os.Stat("/sys/bus/pci/devices"); err != nil {
		t.Skipf("no PCI sysfs on this machine: %v", err)
	}
	return openSys(t, "/sys", nil)
}

func TestRealSysfsAttributes(t *testing.T) {
	s := realSys(t)
	bdfs, err := s.Functions()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil {
		t.Fatal(err)
	}
	if len(bdfs) != len(ents) || len(bdfs) == 0 {
		t.Fatalf("Functions: %d, /sys lists %d", len(bdfs), len(ents))
	}
	for _, b := range bdfs {
		f, err := s.Function(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		dir := "/sys/bus/pci/devices/" + b.String()
		read := func(a string) string {
			v, err := os.ReadFile(filepath.Join(dir, a))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(v))
		}
		got := fmt.Sprintf("0x%04x 0x%04x 0x%06x", f.VendorID, f.DeviceID, f.Class)
		want := read("vendor") + " " + read("device") + " " + read("class")
		if got != want {
			t.Errorf("%s: got %q, sysfs says %q", b, got, want)
		}
		drv := ""
		if l, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
			drv = filepath.Base(l)
		}
		if f.Driver != drv {
			t.Errorf("%s: driver %q, sysfs says %q", b, f.Driver, drv)
		}
		c, closer, err := f.OpenConfigReadOnly()
		if err != nil {
			t.Fatal(err)
		}
		if v, err := pci.ReadU16(c, 0); err != nil || v != f.VendorID {
			t.Errorf("%s: config vendor %#x %v", b, v, err)
		}
		if _, err := pci.ExtCapabilities(c); err != nil && !errors.Is(err, pci.ErrNeedCapSysAdmin) {
			t.Errorf("%s: ext caps: %v", b, err)
		}
		closer.Close()
	}
}

// TestRealSysfsNeedCapSysAdmin opens a real config file on a thread without
// CAP_SYS_ADMIN in its effective set: the kernel then serves 64 bytes, and
// the error must say that CAP_SYS_ADMIN is missing.
func TestRealSysfsNeedCapSysAdmin(t *testing.T) {
	testutil.Require(t, testutil.Root)
	s := realSys(t)
	bdfs, err := s.Functions()
	if err != nil {
		t.Fatal(err)
	}
	var f *pci.Function
	for _, b := range bdfs {
		if st, err := os.Stat("/sys/bus/pci/devices/" + b.String() + "/config"); err == nil && st.Size() == pci.ConfigSize {
			if f, err = s.Function(b); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if f == nil {
		t.Skip("no function with 4 KiB config space on this machine")
	}
	// With CAP_SYS_ADMIN: the extended space reads.
	full, fc, err := f.OpenConfigReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if _, err := pci.ReadU32(full, 0x100); err != nil {
		t.Fatalf("with CAP_SYS_ADMIN: %v", err)
	}

	type res struct {
		c   pci.ConfigSpace
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// This thread's capabilities are changed and never restored: the
		// goroutine exits with the thread locked, so the runtime kills it.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			ch <- res{err: err}
			return
		}
		data[unix.CAP_SYS_ADMIN/32].Effective &^= 1 << (unix.CAP_SYS_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			ch <- res{err: err}
			return
		}
		c, _, err := f.OpenConfigReadOnly()
		ch <- res{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.(*pci.ConfigFile).Close()
	if v, err := pci.ReadU16(r.c, 0); err != nil || v != f.VendorID {
		t.Fatalf("header without CAP_SYS_ADMIN: %#x %v", v, err)
	}
	if _, err := pci.ReadU32(r.c, 0x100); !errors.Is(err, pci.ErrNeedCapSysAdmin) {
		t.Fatalf("extended space without CAP_SYS_ADMIN: %v, want ErrNeedCapSysAdmin", err)
	}
	if _, err := pci.ExtCapabilities(r.c); !errors.Is(err, pci.ErrNeedCapSysAdmin) ||
		!strings.Contains(err.Error(), "config space beyond 64 bytes needs CAP_SYS_ADMIN") {
		t.Fatalf("ExtCapabilities without CAP_SYS_ADMIN: %v", err)
	}
}

// TestOpenConfigReadOnlyFallback: a config file the process may not write
// (0444, CAP_DAC_OVERRIDE dropped on this thread) is opened read-only, and
// says so.
func TestOpenConfigReadOnlyFallback(t *testing.T) {
	testutil.Require(t, testutil.Root)
	tr := newTree(t, sysfstest.Function{BDF: "0000:01:00.0", Vendor: 0x1af4, IOMMUGroup: -1})
	if err := os.Chmod(filepath.Join(tr.Dir, sysfstest.DevicePath("0000:01:00.0"), "config"), 0o444); err != nil {
		t.Fatal(err)
	}
	s := openSys(t, tr.Dir, nil)
	f, err := s.Function(mustBDF(t, "0000:01:00.0"))
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		c   pci.ConfigSpace
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			ch <- res{err: err}
			return
		}
		data[0].Effective &^= 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			ch <- res{err: err}
			return
		}
		if _, _, err := f.OpenConfig(); !errors.Is(err, pci.ErrReadOnlyConfig) {
			ch <- res{err: fmt.Errorf("OpenConfig of a 0444 config without CAP_DAC_OVERRIDE: %v, want ErrReadOnlyConfig", err)}
			return
		}
		c, _, err := f.OpenConfigReadOnly()
		ch <- res{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	cf := r.c.(*pci.ConfigFile)
	defer cf.Close()
	if cf.Writable() {
		t.Fatal("0444 config opened writable without CAP_DAC_OVERRIDE")
	}
	if v, err := pci.ReadU16(cf, 0); err != nil || v != 0x1af4 {
		t.Fatalf("read %#x %v", v, err)
	}
	if err := pci.WriteU16(cf, 4, 0); !errors.Is(err, pci.ErrReadOnlyConfig) {
		t.Fatalf("write: %v", err)
	}
}
