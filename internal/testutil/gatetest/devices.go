package gatetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe/socket"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// Devices is a sysfstest tree whose functions' config spaces are served
// from memory (software devices or byte slices) by Open.
type Devices struct {
	Tree    *sysfstest.Tree
	Configs map[pci.BDF]pci.ConfigSpace
}

// NewDevices makes an empty tree in a fresh temporary directory.
func NewDevices(t testing.TB) *Devices {
	t.Helper()
	tree, err := sysfstest.New(t.TempDir())
	Must(t, err)
	return &Devices{Tree: tree, Configs: map[pci.BDF]pci.ConfigSpace{}}
}

// Add adds a function with identity id, bound to driver ("" = none), in
// IOMMU group b.Device, whose config space is cfg.
func (d *Devices) Add(t testing.TB, bdf string, id emu.Identity, driver string, cfg pci.ConfigSpace) pci.BDF {
	t.Helper()
	b := BDF(t, bdf)
	Must(t, d.Tree.Add(sysfstest.Function{BDF: bdf, Vendor: id.Vendor, Device: id.Device, SubVendor: id.SubVendor,
		SubDev: id.SubDevice, Class: id.Class, Revision: id.Revision, Driver: driver, IOMMUGroup: int(b.Device)}))
	d.Configs[b] = cfg
	return b
}

// AddEmu adds a software device made from cfg (BDF set; ECDSA P-384 unless
// cfg names algorithms), with no driver.
func (d *Devices) AddEmu(t testing.TB, bdf string, cfg emu.Config) (*emu.Device, pci.BDF) {
	t.Helper()
	cfg.BDF, _ = pci.ParseBDF(bdf)
	if cfg.Algorithms == 0 {
		cfg.Algorithms = spdm.AsymECDSAP384
	}
	dev, err := emu.New(cfg)
	Must(t, err)
	return dev, d.Add(t, bdf, dev.Identity(), "", dev)
}

// Open is a pci.Options.ConfigOpener over the added functions; any other
// function is pci.ErrDeviceRemoved.
func (d *Devices) Open(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
	c, ok := d.Configs[b]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", pci.ErrDeviceRemoved, b)
	}
	return c, NopCloser{}, nil
}

// ServeSocket serves d over spdm-socket on a loopback port until cleanup
// and returns the address.
func ServeSocket(t testing.TB, d *emu.Device) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		socket.Serve(ctx, ln, d.Features(), d.Handler())
	}()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return ln.Addr().String()
}
