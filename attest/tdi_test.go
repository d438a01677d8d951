package attest_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/target"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// OpenTDI through a PCI function and through a socket peer: one session
// opener; the TDI answers in the session, and Close drops the lock.
func TestOpenTDI(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:3a:00.1", emu.Config{})
	locks := t.TempDir()
	for name, tg := range map[string]target.Target{
		"pci":    &target.PCI{System: fx.sys, BDF: b, LockDir: locks},
		"socket": &target.Socket{Addr: gatetest.ServeSocket(t, d)},
	} {
		t.Run(name, func(t *testing.T) {
			tdi, err := attest.OpenTDI(ctx, tg, b, &attest.Options{Roots: d.Anchors()})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := tdi.Client.State(ctx); err != nil || st != tdisp.StateConfigUnlocked {
				t.Fatalf("state %v, %v", st, err)
			}
			if tdi.Session.Info().ID == 0 {
				t.Error("no session ID")
			}
			tdi.Close(ctx)
			if tdi.Session.Err() == nil {
				t.Error("session still usable after Close")
			}
			// The lock is free again.
			unlock, err := pci.LockFunction(ctx, locks, b)
			if err != nil {
				t.Fatalf("lock after Close: %v", err)
			}
			unlock()
		})
	}
}

// Each way OpenTDI fails has its own type, so the CLI maps it without text.
func TestOpenTDIErrors(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:3a:00.1", emu.Config{})
	addr := gatetest.ServeSocket(t, d)
	other, err := emu.New(emu.Config{FreshKeys: true, Algorithms: spdm.AsymECDSAP384})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.OpenTDI(ctx, &target.PCI{System: fx.sys, BDF: b}, b, &attest.Options{Roots: other.Anchors()}); !errors.Is(err, spdm.ErrChainNotVerified) {
		t.Errorf("wrong anchor: %v", err)
	}
	// The socket peer answers for 0000:3a:00.1 only.
	var te *attest.TDISPError
	if _, err := attest.OpenTDI(ctx, &target.Socket{Addr: addr}, pci.BDF{}, &attest.Options{Roots: d.Anchors()}); !errors.As(err, &te) {
		t.Errorf("other interface: %v", err)
	}
	var ie *attest.InterfaceError
	if _, err := attest.OpenTDI(ctx, &target.Socket{Addr: addr}, pci.BDF{Domain: 0x100}, &attest.Options{Roots: d.Anchors()}); !errors.As(err, &ie) {
		t.Errorf("segment 0x100: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var oe *target.OpenError
	if _, err := attest.OpenTDI(ctx, &target.Socket{Addr: dead}, b, &attest.Options{Roots: d.Anchors()}); !errors.As(err, &oe) || oe.Step != target.StepConnect {
		t.Errorf("dead socket: %v", err)
	}
	// A mailbox without secured CMA.
	id := emu.Identity{Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, Revision: 1}
	nb := fx.Add(t, "0000:0d:00.0", id, "", emu.NewConfigSpace(id, doe.NewModel([]doe.Feature{doe.FeatureCMA}, nil)))
	if _, err := attest.OpenTDI(ctx, &target.PCI{System: fx.sys, BDF: nb}, nb, &attest.Options{Roots: d.Anchors()}); !errors.Is(err, attest.ErrNoSecuredCMA) {
		t.Errorf("no secured CMA: %v", err)
	}
}

// OpenTDIOf reaches the device a Request names: a PCI function of a sysfs
// tree (which Close closes, with the lock) or a socket peer; a tree that
// does not open is a *SysfsError.
func TestOpenTDIOf(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:3a:00.1", emu.Config{})
	locks := t.TempDir()
	po := &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: fx.Open}
	o := &attest.Options{Roots: d.Anchors()}
	for name, req := range map[string]attest.Request{
		"pci":    {BDF: b, SysfsRoot: fx.Tree.Dir, PCI: po, LockDir: locks},
		"socket": {Socket: gatetest.ServeSocket(t, d), BDF: b},
	} {
		t.Run(name, func(t *testing.T) {
			tdi, err := attest.OpenTDIOf(ctx, req, o)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := tdi.Client.State(ctx); err != nil || st != tdisp.StateConfigUnlocked {
				t.Fatalf("state %v, %v", st, err)
			}
			tdi.Close(ctx)
			unlock, err := pci.LockFunction(ctx, locks, b)
			if err != nil {
				t.Fatalf("lock after Close: %v", err)
			}
			unlock()
		})
	}
	var se *attest.SysfsError
	if _, err := attest.OpenTDIOf(ctx, attest.Request{BDF: b, SysfsRoot: t.TempDir() + "/none", PCI: po}, o); !errors.As(err, &se) {
		t.Errorf("no sysfs tree: %v", err)
	}
	if _, err := attest.OpenTDIOf(ctx, attest.Request{BDF: pci.BDF{Bus: 9}, SysfsRoot: fx.Tree.Dir, PCI: po}, o); err == nil || errors.As(err, &se) ||
		!errors.Is(err, pci.ErrNoDevice) {
		t.Errorf("no function: %v", err)
	}
}
