package target_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// Scan: identity and DSN read-only, discovery where MayDriveDOE allows it,
// the reason where it does not, and the lock's failure per mailbox.
func TestScan(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	_, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	id := emu.Identity{Vendor: 0x8086, Device: 0x0d93, Class: 0x050210, Revision: 1}
	owned := doe.NewModel([]doe.Feature{doe.FeatureCXLCDAT}, nil)
	ob := d.Add(t, "0000:02:00.0", id, "cxl_pci", emu.NewConfigSpace(id, owned))
	locks := t.TempDir()
	o := &target.ScanOptions{LockDir: locks, Timeout: 5 * time.Second}

	fc, err := target.Scan(ctx, sys, b, o)
	if err != nil || fc.Function.BDF != b || fc.DSN == nil || fc.Skipped != "" || len(fc.Problems) != 0 || len(fc.Mailboxes) != 1 ||
		fc.Mailboxes[0].Err != nil || !slices.Contains(fc.Mailboxes[0].Features, "cma-spdm") {
		t.Fatalf("emu function: %v %+v", err, fc)
	}
	fc, err = target.Scan(ctx, sys, b, &target.ScanOptions{NoDOE: true})
	if err != nil || fc.Skipped != "--no-doe" || len(fc.Mailboxes) != 1 || fc.Mailboxes[0].Skipped != "--no-doe" || len(fc.Mailboxes[0].Features) != 0 {
		t.Fatalf("--no-doe: %v %+v", err, fc)
	}
	fc, err = target.Scan(ctx, sys, ob, o)
	if err != nil || fc.Skipped == "" || len(fc.Mailboxes) != 1 || fc.Mailboxes[0].Skipped != fc.Skipped {
		t.Fatalf("driver-owned: %v %+v", err, fc)
	}
	if st := owned.Stats(); st.Reads+st.Writes != 0 {
		t.Errorf("the driver's mailbox was touched: %+v", st)
	}
	unlock, err := pci.LockFunction(ctx, locks, b)
	if err != nil {
		t.Fatal(err)
	}
	fc, err = target.Scan(ctx, sys, b, &target.ScanOptions{LockDir: locks, Timeout: 20 * time.Millisecond})
	unlock()
	if err != nil || fc.Skipped != "" || len(fc.Mailboxes) != 1 || fc.Mailboxes[0].Err == nil || fc.Mailboxes[0].Skipped == "" {
		t.Fatalf("lock held: %v %+v", err, fc)
	}
	if _, err := target.Scan(ctx, sys, pci.BDF{Bus: 9}, o); !errors.Is(err, pci.ErrNoDevice) {
		t.Fatalf("missing function: %v", err)
	}
}

// SysfsPCI opens the tree and the function, and Close releases the lock;
// a tree that does not open is an OpenError at StepFunction.
func TestSysfsPCI(t *testing.T) {
	ctx := context.Background()
	d, _ := open(t)
	_, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	locks := t.TempDir()
	opts := &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: d.Open}
	c, err := (&target.SysfsPCI{Root: d.Tree.Dir, Options: opts, BDF: b, LockDir: locks}).Open(ctx)
	if err != nil || c.CMA == nil || len(c.Mailboxes) != 1 {
		t.Fatalf("open: %v %+v", err, c)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	unlock, err := pci.LockFunction(ctx, locks, b)
	if err != nil {
		t.Fatalf("lock after Close: %v", err)
	}
	unlock()
	var oe *target.OpenError
	_, err = (&target.SysfsPCI{Root: filepath.Join(t.TempDir(), "none"), Options: opts, BDF: b}).Open(ctx)
	if !errors.As(err, &oe) || oe.Step != target.StepFunction {
		t.Fatalf("no tree: %v", err)
	}
	_, err = (&target.SysfsPCI{Root: d.Tree.Dir, Options: opts, BDF: pci.BDF{Bus: 9}}).Open(ctx)
	if !errors.As(err, &oe) || oe.Step != target.StepFunction || !errors.Is(err, pci.ErrNoDevice) {
		t.Fatalf("no function: %v", err)
	}
}

// ScanFunctions: a named function that is missing is reported in missing
// and the others are still scanned; from a bus listing it is skipped.
func TestScanFunctions(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	_, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	gone := pci.BDF{Bus: 9}
	o := &target.ScanOptions{NoDOE: true}
	facts, missing, err := target.ScanFunctions(ctx, sys, []pci.BDF{gone, b}, false, o)
	if err != nil || len(facts) != 1 || facts[0].Function.BDF != b || !errors.Is(missing, pci.ErrNoDevice) {
		t.Fatalf("named: %v %v %+v", err, missing, facts)
	}
	facts, missing, err = target.ScanFunctions(ctx, sys, []pci.BDF{b, gone}, true, o)
	if err != nil || missing != nil || len(facts) != 1 || facts[0].Function.BDF != b {
		t.Fatalf("listed: %v %v %+v", err, missing, facts)
	}
	if facts, missing, err = target.ScanFunctions(ctx, sys, nil, false, o); err != nil || missing != nil || facts != nil {
		t.Fatalf("none: %v %v %+v", err, missing, facts)
	}
}
