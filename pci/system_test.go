package pci_test

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

func newTree(t *testing.T, fns ...sysfstest.Function) *sysfstest.Tree {
	t.Helper()
	tr, err := sysfstest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		if err := tr.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func openSys(t *testing.T, dir string, opts *pci.Options) *pci.System {
	t.Helper()
	s, err := pci.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustBDF(t *testing.T, s string) pci.BDF {
	t.Helper()
	b, err := pci.ParseBDF(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func intp(n int) *int { return &n }

func TestFunctionAttributes(t *testing.T) {
	nic := sysfstest.Function{BDF: "0000:3b:00.0", Vendor: 0x8086, Device: 0x1572, SubVendor: 0x8086, SubDev: 0x0001,
		Class: 0x020000, Revision: 0x02, Driver: "i40e", IOMMUGroup: 12}
	nic1 := sysfstest.Function{BDF: "0000:3b:00.1", Vendor: 0x8086, Device: 0x1572, Class: 0x020000, Driver: "vfio-pci", IOMMUGroup: 12}
	cxl := sysfstest.Function{BDF: "0001:c0:1f.7", Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, Revision: 0xff, IOMMUGroup: -1}
	tr := newTree(t, nic, nic1, cxl)
	s := openSys(t, tr.Dir, nil)
	cases := []struct {
		bdf  string
		want pci.Function
	}{
		{"0000:3b:00.0", pci.Function{BDF: mustBDF(t, "0000:3b:00.0"), VendorID: 0x8086, DeviceID: 0x1572, SubsystemVendorID: 0x8086,
			SubsystemDeviceID: 1, Class: 0x020000, Revision: 2, Driver: "i40e", IOMMUGroup: intp(12),
			GroupMembers: []pci.BDF{mustBDF(t, "0000:3b:00.0"), mustBDF(t, "0000:3b:00.1")}}},
		{"0000:3b:00.1", pci.Function{BDF: mustBDF(t, "0000:3b:00.1"), VendorID: 0x8086, DeviceID: 0x1572, Class: 0x020000,
			Driver: "vfio-pci", IOMMUGroup: intp(12), GroupMembers: []pci.BDF{mustBDF(t, "0000:3b:00.0"), mustBDF(t, "0000:3b:00.1")}}},
		{"0001:c0:1f.7", pci.Function{BDF: mustBDF(t, "0001:c0:1f.7"), VendorID: 0x8086, DeviceID: 0x0d93, Class: 0x050210, Revision: 0xff}},
	}
	for _, c := range cases {
		got, err := s.Function(mustBDF(t, c.bdf))
		if err != nil {
			t.Fatalf("%s: %v", c.bdf, err)
		}
		if d := cmp.Diff(&c.want, got, cmpopts.IgnoreUnexported(pci.Function{})); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.bdf, d)
		}
	}
	if err := tr.Attr("0000:3b:00.1", "driver_override", "vfio-pci\n"); err != nil {
		t.Fatal(err)
	}
	if f, err := s.Function(mustBDF(t, "0000:3b:00.1")); err != nil || f.DriverOverride != "vfio-pci" {
		t.Fatalf("driver_override %q %v", f.DriverOverride, err)
	}
}

func TestFunctionsSorted(t *testing.T) {
	tr := newTree(t,
		sysfstest.Function{BDF: "0001:00:00.0", IOMMUGroup: -1},
		sysfstest.Function{BDF: "0000:3b:00.1", IOMMUGroup: -1},
		sysfstest.Function{BDF: "0000:00:1f.7", IOMMUGroup: -1},
		sysfstest.Function{BDF: "0000:3b:00.0", IOMMUGroup: -1},
	)
	// A name that is not a BDF must be skipped, not used to build paths.
	if err := os.Mkdir(filepath.Join(tr.Dir, "bus/pci/devices/..evil"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := openSys(t, tr.Dir, nil).Functions()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range got {
		names = append(names, b.String())
	}
	want := []string{"0000:00:1f.7", "0000:3b:00.0", "0000:3b:00.1", "0001:00:00.0"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("Functions (-want +got):\n%s", d)
	}
}

func TestFunctionErrors(t *testing.T) {
	base := sysfstest.Function{BDF: "0000:01:00.0", Vendor: 0x1af4, Device: 0x1041, Class: 0x020000, IOMMUGroup: 3}
	cases := []struct {
		name    string
		mutate  func(tr *sysfstest.Tree) error
		wantErr error
		missing []string
	}{
		{"no such device", func(tr *sysfstest.Tree) error { return tr.Remove(base.BDF) }, pci.ErrNoDevice, nil},
		{"vendor missing", func(tr *sysfstest.Tree) error { return tr.RemoveAttr(base.BDF, "vendor") }, fs.ErrNotExist, nil},
		{"vendor malformed", func(tr *sysfstest.Tree) error { return tr.Attr(base.BDF, "vendor", "0x1af4x\n") }, pci.ErrBadAttr, nil},
		{"vendor too wide", func(tr *sysfstest.Tree) error { return tr.Attr(base.BDF, "vendor", "0x11af4\n") }, pci.ErrBadAttr, nil},
		{"class decimal", func(tr *sysfstest.Tree) error { return tr.Attr(base.BDF, "class", "131072\n") }, pci.ErrBadAttr, nil},
		{"group not a number", func(tr *sysfstest.Tree) error {
			p := filepath.Join(tr.Dir, sysfstest.DevicePath(base.BDF), "iommu_group")
			return errors.Join(os.Remove(p), os.Symlink("../../../kernel/iommu_groups/x1", p))
		}, pci.ErrBadAttr, nil},
		{"optional attrs missing", func(tr *sysfstest.Tree) error {
			return errors.Join(tr.RemoveAttr(base.BDF, "subsystem_vendor"), tr.RemoveAttr(base.BDF, "revision"),
				tr.RemoveAttr(base.BDF, "driver_override"))
		}, nil, []string{"subsystem_vendor", "revision", "driver_override"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTree(t, base)
			if err := c.mutate(tr); err != nil {
				t.Fatal(err)
			}
			f, err := openSys(t, tr.Dir, nil).Function(mustBDF(t, base.BDF))
			if c.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(c.missing, f.Missing); d != "" || f.VendorID != 0x1af4 {
					t.Fatalf("missing (-want +got):\n%s", d)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || f != nil {
				t.Fatalf("err = %v (f %v), want %v", err, f, c.wantErr)
			}
			if !strings.Contains(err.Error(), base.BDF) {
				t.Errorf("error %q does not name the BDF", err)
			}
			if errors.Is(err, pci.ErrDeviceRemoved) {
				t.Errorf("error %q claims removal of a device that is still there", err)
			}
		})
	}
}

func TestDeviceRemovedMidRead(t *testing.T) {
	tr := newTree(t, sysfstest.Function{BDF: "0000:01:00.0", Vendor: 0x1af4, Device: 0x1041, IOMMUGroup: 3})
	s := openSys(t, tr.Dir, nil)
	bdf := mustBDF(t, "0000:01:00.0")
	pci.SetAfterFound(s, func() {
		if err := tr.Remove(bdf.String()); err != nil {
			t.Error(err)
		}
	})
	if _, err := s.Function(bdf); !errors.Is(err, pci.ErrDeviceRemoved) || !strings.Contains(err.Error(), "0000:01:00.0") {
		t.Fatalf("err = %v, want ErrDeviceRemoved naming the BDF", err)
	}
	// Found, then gone before the config space is opened.
	pci.SetAfterFound(s, nil)
	if err := tr.Add(sysfstest.Function{BDF: "0000:01:00.0", IOMMUGroup: -1}); err != nil {
		t.Fatal(err)
	}
	f, err := s.Function(bdf)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Remove(bdf.String()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.OpenConfig(); !errors.Is(err, pci.ErrDeviceRemoved) {
		t.Fatalf("OpenConfig after removal: %v", err)
	}
}

func TestLockdown(t *testing.T) {
	tr := newTree(t)
	s := openSys(t, tr.Dir, nil)
	for _, mode := range []string{"integrity", "confidentiality", "none"} {
		if err := tr.Lockdown(mode); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Lockdown(); err != nil || got != mode {
			t.Errorf("Lockdown = %q %v, want %q", got, err, mode)
		}
	}
	p := filepath.Join(tr.Dir, "kernel/security/lockdown")
	if err := os.WriteFile(p, []byte("none integrity confidentiality\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lockdown(); !errors.Is(err, pci.ErrBadAttr) {
		t.Errorf("no bracketed mode: err = %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lockdown(); err != nil || got != "none" {
		t.Errorf("missing lockdown file: %q %v, want none", got, err)
	}
}

func TestParseLockdown(t *testing.T) {
	good := map[string]string{"[none] integrity confidentiality": "none", "none [integrity] confidentiality": "integrity",
		"none integrity [confidentiality]\n": "confidentiality", "[future]": "future"}
	for in, want := range good {
		if got, err := pci.ParseLockdown(in); err != nil || got != want {
			t.Errorf("ParseLockdown(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "none", "[none] [integrity]", "[]", "[none", "[no]ne]", "[[none]]"} {
		if got, err := pci.ParseLockdown(in); err == nil {
			t.Errorf("ParseLockdown(%q) = %q, want error", in, got)
		}
	}
}

func TestMayDriveDOE(t *testing.T) {
	bdf := "0000:0d:00.0"
	cases := []struct {
		name     string
		driver   string
		tsm      string
		lockdown string
		euid     int
		want     error
		sentence string
	}{
		{"no driver", "", "", "none", 0, nil, ""},
		{"vfio-pci", "vfio-pci", "", "none", 0, nil, ""},
		{"empty tsm/connect", "", "\n", "none", 0, nil, ""},
		{"cxl_pci", "cxl_pci", "", "none", 0, pci.ErrDriverOwnsMailbox, "kernel driver cxl_pci owns the mailbox; unbind it first"},
		{"tsm connected", "vfio-pci", "tsm0\n", "none", 0, pci.ErrTSMOwnsMailbox, `TSM "tsm0" is connected`},
		{"lockdown integrity", "", "", "integrity", 0, pci.ErrLockdown, `lockdown is "integrity"`},
		{"lockdown confidentiality", "", "", "confidentiality", 0, pci.ErrLockdown, `lockdown is "confidentiality"`},
		{"not root", "", "", "none", 1000, pci.ErrNotRoot, "not running as root (euid 1000)"},
		{"driver beats lockdown", "nvme", "", "integrity", 1000, pci.ErrDriverOwnsMailbox, "kernel driver nvme owns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTree(t, sysfstest.Function{BDF: bdf, Vendor: 0x8086, Device: 0x0d93, Driver: c.driver, IOMMUGroup: -1})
			if c.tsm != "" {
				if err := tr.Attr(bdf, "tsm/connect", c.tsm); err != nil {
					t.Fatal(err)
				}
			}
			if err := tr.Lockdown(c.lockdown); err != nil {
				t.Fatal(err)
			}
			s := openSys(t, tr.Dir, &pci.Options{Geteuid: func() int { return c.euid }})
			f, err := s.Function(mustBDF(t, bdf))
			if err != nil {
				t.Fatal(err)
			}
			err = s.MayDriveDOE(f)
			if c.want == nil {
				if err != nil {
					t.Fatalf("MayDriveDOE = %v, want nil", err)
				}
				return
			}
			var be *pci.BlockedError
			if !errors.As(err, &be) || !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.sentence) || !strings.Contains(err.Error(), bdf) {
				t.Fatalf("MayDriveDOE = %v, want %v mentioning %q", err, c.want, c.sentence)
			}
		})
	}
	// An unreadable lockdown state blocks (fail closed).
	tr := newTree(t, sysfstest.Function{BDF: bdf, IOMMUGroup: -1})
	if err := os.WriteFile(filepath.Join(tr.Dir, "kernel/security/lockdown"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openSys(t, tr.Dir, &pci.Options{Geteuid: func() int { return 0 }})
	f, err := s.Function(mustBDF(t, bdf))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MayDriveDOE(f); err == nil {
		t.Fatal("garbage lockdown file allowed DOE")
	}
}

func TestOpenConfigAndDSN(t *testing.T) {
	fn := sysfstest.Function{BDF: "0000:0d:00.0", Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, IOMMUGroup: -1}
	cfg := sysfstest.Header(fn)
	binary.LittleEndian.PutUint32(cfg[0x100:], uint32(pci.ExtCapIDDSN)|1<<16|0x140<<20)
	binary.LittleEndian.PutUint64(cfg[0x104:], 0x0011223344556677)
	binary.LittleEndian.PutUint32(cfg[0x140:], uint32(pci.ExtCapIDDOE)|1<<16)
	fn.Config = cfg
	plain := sysfstest.Function{BDF: "0000:0e:00.0", Vendor: 1, Device: 2, IOMMUGroup: -1}
	tr := newTree(t, fn, plain)
	s := openSys(t, tr.Dir, nil)

	f, err := s.Function(mustBDF(t, fn.BDF))
	if err != nil {
		t.Fatal(err)
	}
	c, closer, err := f.OpenConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if !c.(*pci.ConfigFile).Writable() {
		t.Fatal("root could not open the fixture config read-write")
	}
	if v, err := pci.ReadU16(c, 0); err != nil || v != 0x8086 {
		t.Fatalf("vendor from config %#x %v", v, err)
	}
	dsn, ok, err := f.DSN(c)
	if err != nil || !ok || dsn != 0x0011223344556677 {
		t.Fatalf("DSN %#x %v %v", dsn, ok, err)
	}
	caps, err := pci.ExtCapabilities(c)
	if err != nil || len(pci.FindExt(caps, pci.ExtCapIDDOE)) != 1 {
		t.Fatalf("ext caps %v %v", caps, err)
	}

	ro, rcloser, err := f.OpenConfigReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	defer rcloser.Close()
	if err := pci.WriteU32(ro, 0x140, 0); !errors.Is(err, pci.ErrReadOnlyConfig) {
		t.Fatalf("write through read-only config: %v", err)
	}

	g, err := s.Function(mustBDF(t, plain.BDF))
	if err != nil {
		t.Fatal(err)
	}
	gc, gclose, err := g.OpenConfigReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	defer gclose.Close()
	if _, ok, err := g.DSN(gc); ok || err != nil {
		t.Fatalf("DSN of a function without one: %v %v", ok, err)
	}
}

func TestConventionalConfigHasNoExtCaps(t *testing.T) {
	fn := sysfstest.Function{BDF: "0000:00:01.0", Vendor: 0x1af4, Device: 0x1045, IOMMUGroup: -1}
	fn.Config = sysfstest.Header(fn)[:256]
	tr := newTree(t, fn)
	f, err := openSys(t, tr.Dir, nil).Function(mustBDF(t, fn.BDF))
	if err != nil {
		t.Fatal(err)
	}
	c, closer, err := f.OpenConfigReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if n := pci.ConfigLen(c); n != 256 {
		t.Fatalf("ConfigLen = %d", n)
	}
	if caps, err := pci.ExtCapabilities(c); err != nil || caps != nil {
		t.Fatalf("ext caps of a 256-byte config: %v %v", caps, err)
	}
}

func TestConfigOpenerInjected(t *testing.T) {
	tr := newTree(t, sysfstest.Function{BDF: "0000:0d:00.0", Vendor: 0x8086, IOMMUGroup: -1})
	called := 0
	mem := make(memCfg, pci.ConfigSize)
	mem[0] = 0x42
	s := openSys(t, tr.Dir, &pci.Options{ConfigOpener: func(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
		called++
		return mem, nopCloser{}, nil
	}})
	f, err := s.Function(mustBDF(t, "0000:0d:00.0"))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := f.OpenConfig()
	if err != nil || called != 1 {
		t.Fatalf("opener called %d: %v", called, err)
	}
	if v, _ := pci.ReadU8(c, 0); v != 0x42 {
		t.Fatalf("config did not come from the injected opener: %#x", v)
	}
}

type memCfg []byte

func (m memCfg) ReadAt(b []byte, off int64) (int, error)  { return copy(b, m[off:]), nil }
func (m memCfg) WriteAt(b []byte, off int64) (int, error) { return copy(m[off:], b), nil }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func TestWriteErrLockdown(t *testing.T) {
	tr := newTree(t, sysfstest.Function{BDF: "0000:01:00.0", IOMMUGroup: -1})
	s := openSys(t, tr.Dir, nil)
	bdf := mustBDF(t, "0000:01:00.0")
	eperm := &fs.PathError{Op: "write", Path: "config", Err: syscall.EPERM}
	if err := pci.WriteErr(s, bdf, eperm); errors.Is(err, pci.ErrLockdown) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("EPERM without lockdown: %v", err)
	}
	if err := tr.Lockdown("confidentiality"); err != nil {
		t.Fatal(err)
	}
	err := pci.WriteErr(s, bdf, eperm)
	if !errors.Is(err, pci.ErrLockdown) || !strings.Contains(err.Error(), `"confidentiality"`) {
		t.Fatalf("EPERM under lockdown: %v", err)
	}
	if err := pci.WriteErr(s, bdf, &fs.PathError{Op: "write", Path: "config", Err: syscall.ENODEV}); !errors.Is(err, pci.ErrDeviceRemoved) {
		t.Fatalf("ENODEV: %v", err)
	}
}
