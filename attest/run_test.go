package attest_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// Run reaches a PCI function (sysfs, lock) or a socket peer and attests it.
func TestRun(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:01:00.0", emu.Config{})
	popts := &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: fx.Open}
	locks := t.TempDir()
	o := &attest.Options{Roots: d.Anchors(), Timeout: 5 * time.Second}

	ev, err := attest.Run(ctx, attest.Request{BDF: b, SysfsRoot: fx.Tree.Dir, PCI: popts, LockDir: locks}, o)
	if err != nil || ev.Failure != nil || ev.Identity.BDF != b.String() || !ev.ChallengeVerified {
		t.Fatalf("function: %v %+v", err, ev)
	}
	addr := gatetest.ServeSocket(t, d)
	ev, err = attest.Run(ctx, attest.Request{Socket: addr, VendorID: 0x8086, DeviceID: 0x0001}, o)
	if err != nil || ev.Failure != nil || ev.Identity.Socket != addr || ev.Identity.VendorID != 0x8086 || ev.Identity.FromCMASAN {
		t.Fatalf("socket with IDs: %v %+v", err, ev)
	}
	if o.SecuredTransport != nil {
		t.Error("Run changed the caller's Options")
	}
	ev, err = attest.Run(ctx, attest.Request{Socket: addr}, o)
	if err != nil || !ev.Identity.FromCMASAN || ev.Identity.VendorID != d.Identity().Vendor {
		t.Fatalf("socket, IDs from the SAN: %v %+v", err, ev)
	}
}

// A device Run cannot reach is a *target.OpenError naming the step.
func TestRunUnreachable(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	_, b := fx.AddEmu(t, "0000:01:00.0", emu.Config{})
	popts := &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: fx.Open}
	locks := t.TempDir()
	unlock, err := pci.LockFunction(ctx, locks, b)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	o := &attest.Options{Timeout: 50 * time.Millisecond}
	for _, c := range []struct {
		name string
		req  attest.Request
		step target.Step
		is   error
	}{
		{"no sysfs", attest.Request{BDF: b, SysfsRoot: filepath.Join(t.TempDir(), "none"), PCI: popts, LockDir: locks}, target.StepFunction, nil},
		{"no function", attest.Request{BDF: pci.BDF{Bus: 9}, SysfsRoot: fx.Tree.Dir, PCI: popts, LockDir: locks}, target.StepFunction, pci.ErrNoDevice},
		{"lock held", attest.Request{BDF: b, SysfsRoot: fx.Tree.Dir, PCI: popts, LockDir: locks}, target.StepLock, context.DeadlineExceeded},
		{"dead socket", attest.Request{Socket: dead}, target.StepConnect, nil},
	} {
		ev, err := attest.Run(ctx, c.req, o)
		var oe *target.OpenError
		if ev != nil || !errors.As(err, &oe) || oe.Step != c.step || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v (%+v), want step %s", c.name, err, oe, c.step)
		}
	}
}
