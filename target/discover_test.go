package target_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// Discover: one result per asked offset, the features of the mailbox
// there; a lock held elsewhere skips discovery and says why.
func TestDiscover(t *testing.T) {
	ctx := context.Background()
	d, sys := open(t)
	_, b := d.AddEmu(t, "0000:01:00.0", emu.Config{})
	locks := t.TempDir()
	c, err := (&target.PCI{System: sys, BDF: b, LockDir: locks}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	off := c.Mailboxes[0].Offset()
	c.Close()

	got := target.Discover(ctx, &target.PCI{System: sys, BDF: b, LockDir: locks, Offsets: []uint16{off}})
	if len(got) != 1 || got[0].Offset != off || got[0].Err != nil || got[0].Skipped != "" ||
		!strings.Contains(strings.Join(got[0].Features, ","), "cma") {
		t.Fatalf("discover: %+v", got)
	}

	unlock, err := pci.LockFunction(ctx, locks, b)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	lctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	got = target.Discover(lctx, &target.PCI{System: sys, BDF: b, LockDir: locks, Offsets: []uint16{off}})
	if len(got) != 1 || got[0].Err == nil || !strings.HasPrefix(got[0].Skipped, "per-function lock not acquired") || len(got[0].Features) != 0 {
		t.Fatalf("lock held: %+v", got)
	}
}
