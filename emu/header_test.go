package emu_test

import (
	"bytes"
	"testing"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// The software function's type-0 header (IDs, class, capability pointer,
// PCI Express capability) is the one the sysfs fixtures write for the same
// identity: emu builds it itself (it never imports a test fixture).
func TestConfigHeaderMatchesFixture(t *testing.T) {
	id := emu.Identity{Vendor: 0x1b36, Device: 0x0010, SubVendor: 0x1af4, SubDevice: 0x1100, Class: 0x010802, Revision: 2}
	cs := emu.NewConfigSpace(id, nil)
	got := make([]byte, 0x44)
	if _, err := cs.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := sysfstest.Header(sysfstest.Function{Vendor: id.Vendor, Device: id.Device, SubVendor: id.SubVendor,
		SubDev: id.SubDevice, Class: id.Class, Revision: id.Revision})[:0x44]
	for _, r := range [][2]int{{0x00, 0x10}, {0x2c, 0x30}, {0x34, 0x35}, {0x40, 0x44}} {
		if !bytes.Equal(got[r[0]:r[1]], want[r[0]:r[1]]) {
			t.Errorf("config [%#x, %#x) = % x, fixture % x", r[0], r[1], got[r[0]:r[1]], want[r[0]:r[1]])
		}
	}
}
