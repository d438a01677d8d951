package sysfstest

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
)

func TestTreeThroughRoot(t *testing.T) {
	tr, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(Function{BDF: "0000:01:00.0", Vendor: 0x1af4, Device: 0x1041, Class: 0x020000, Driver: "virtio-pci", IOMMUGroup: 7}); err != nil {
		t.Fatal(err)
	}
	r, err := pci.OpenRoot(tr.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := "bus/pci/devices/0000:01:00.0/"
	if v, err := r.ReadString(d + "vendor"); err != nil || v != "0x1af4" {
		t.Fatalf("vendor %q %v", v, err)
	}
	if drv, err := r.LinkBase(d + "driver"); err != nil || drv != "virtio-pci" {
		t.Fatalf("driver %q %v", drv, err)
	}
	if g, err := r.LinkBase(d + "iommu_group"); err != nil || g != "7" {
		t.Fatalf("group %q %v", g, err)
	}
	if !r.Exists("kernel/iommu_groups/7/devices/0000:01:00.0/vendor") {
		t.Fatal("group member link does not resolve inside the root")
	}
	if err := tr.Unbind("0000:01:00.0"); err != nil || r.Exists(d+"driver") {
		t.Fatalf("unbind: %v", err)
	}
	if err := tr.Lockdown("integrity"); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.ReadString("kernel/security/lockdown"); s != "none [integrity] confidentiality" {
		t.Fatalf("lockdown %q", s)
	}
	if _, err := r.ReadString("../../etc/passwd"); err == nil {
		t.Fatal("escaping path was allowed")
	}
}
