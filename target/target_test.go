package target_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

func open(t *testing.T) (*gatetest.Devices, *pci.System) {
	t.Helper()
	d := gatetest.NewDevices(t)
	sys, err := pci.Open(d.Tree.Dir, &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: d.Open})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return d, sys
}

// A PCI target takes the lock for the Conn's life, discovers every mailbox
// and returns the CMA and secured-CMA transports of one mailbox.
func TestPCIOpen(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	dev, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	locks := t.TempDir()
	c, err := (&target.PCI{System: sys, BDF: b, LockDir: locks}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.CMA == nil || c.Secured == nil || len(c.Mailboxes) != 1 || c.Mailboxes[0].Err != nil || len(c.Mailboxes[0].Features) < 2 {
		t.Fatalf("conn %+v", c)
	}
	if rsp, err := c.CMA.Exchange(ctx, []byte{0x10, 0x84, 0, 0}); err != nil || len(rsp) < 4 || rsp[1] != 0x04 {
		t.Fatalf("GET_VERSION over the CMA transport: %x %v", rsp, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := pci.LockFunction(lctx, locks, b); err == nil {
		t.Fatal("per-function lock free while the target is open")
	}
	// A second opener waits for the lock and fails at the lock step.
	_, err = (&target.PCI{System: sys, BDF: b, LockDir: locks}).Open(lctx)
	if oe := (*target.OpenError)(nil); !errors.As(err, &oe) || oe.Step != target.StepLock {
		t.Fatalf("second open: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	unlock, err := pci.LockFunction(ctx, locks, b)
	if err != nil {
		t.Fatalf("lock not released by Close: %v", err)
	}
	_ = unlock()
	if dev.Model().Stats().Writes == 0 {
		t.Fatal("no DOE traffic")
	}
}

// Who may touch the mailbox: a bound host driver or a connected platform
// TSM stops Open before the config space is opened for writing.
func TestPCIOpenRefused(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	owned, ob := d.AddEmu(t, "0000:02:00.0", emu.Config{})
	gatetest.Must(t, d.Tree.Bind("0000:02:00.0", "cxl_pci"))
	tsm, tb := d.AddEmu(t, "0000:03:00.0", emu.Config{})
	gatetest.Must(t, d.Tree.Attr("0000:03:00.0", "tsm/connect", "tsm0\n"))
	for _, c := range []struct {
		dev  *emu.Device
		bdf  pci.BDF
		want error
	}{{owned, ob, pci.ErrDriverOwnsMailbox}, {tsm, tb, pci.ErrTSMOwnsMailbox}} {
		_, err := (&target.PCI{System: sys, BDF: c.bdf, LockDir: t.TempDir()}).Open(ctx)
		var oe *target.OpenError
		if !errors.As(err, &oe) || oe.Step != target.StepPolicy || !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v at %s", c.bdf, err, c.want, target.StepPolicy)
		}
		if st := c.dev.Model().Stats(); st.Reads+st.Writes != 0 {
			t.Errorf("%s: mailbox touched: %+v", c.bdf, st)
		}
	}
	if _, err := (&target.PCI{System: sys, BDF: pci.BDF{Bus: 0x7f}}).Open(ctx); !errors.Is(err, pci.ErrNoDevice) {
		t.Errorf("missing function: %v", err)
	}
}

func TestSocketOpen(t *testing.T) {
	ctx := context.Background()
	dev, err := emu.New(emu.Config{})
	gatetest.Must(t, err)
	c, err := (&target.Socket{Addr: gatetest.ServeSocket(t, dev)}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rsp, err := c.CMA.Exchange(ctx, []byte{0x10, 0x84, 0, 0}); err != nil || len(rsp) < 4 || rsp[1] != 0x04 || c.Secured == nil {
		t.Fatalf("GET_VERSION over the socket: %x %v", rsp, err)
	}
	_, err = (&target.Socket{Addr: "127.0.0.1:1"}).Open(ctx)
	if oe := (*target.OpenError)(nil); !errors.As(err, &oe) || oe.Step != target.StepConnect {
		t.Fatalf("dead socket: %v", err)
	}
}

// Opening a function that does not exist leaves no lock file behind.
func TestPCIOpenMissingLeavesNoLock(t *testing.T) {
	_, sys := open(t)
	locks := t.TempDir()
	if _, err := (&target.PCI{System: sys, BDF: pci.BDF{Bus: 0x7e}, LockDir: locks}).Open(context.Background()); !errors.Is(err, pci.ErrNoDevice) {
		t.Fatalf("missing function: %v", err)
	}
	if ents, err := os.ReadDir(locks); err != nil || len(ents) != 0 {
		t.Fatalf("lock dir after a missing function: %v %v", ents, err)
	}
}

// Offering picks the first mailbox whose discovery listed the feature and
// passes over one whose discovery failed.
func TestConnOffering(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	_, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	c, err := (&target.PCI{System: sys, BDF: b}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if mb := c.Offering(doe.FeatureCMA); mb == nil || mb != c.Mailboxes[0].Mailbox {
		t.Fatalf("CMA: %v", mb)
	}
	if mb := c.Offering(doe.FeatureCXLCDAT); mb != nil {
		t.Fatalf("CDAT offered by %v", mb)
	}
	c.Mailboxes[0].Err = errors.New("discovery failed")
	if mb := c.Offering(doe.FeatureCMA); mb != nil {
		t.Fatalf("CMA from a failed discovery: %v", mb)
	}
}
