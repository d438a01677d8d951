package tdisp

import (
	"context"
	"errors"
	"testing"
)

// LockedReport: no report from an unlocked TDI (a *NotLockedError with
// its state); the report once it is locked; the state query's failure.
func TestLockedReport(t *testing.T) {
	ctx := context.Background()
	d, id := testDevice(t)
	c := NewClient(d, id, nil)
	var nl *NotLockedError
	if st, rep, err := c.LockedReport(ctx); !errors.As(err, &nl) || nl.State != StateConfigUnlocked || st != StateConfigUnlocked || rep != nil {
		t.Fatalf("unlocked: %v %v %v", st, rep, err)
	}
	if _, err := c.Lock(ctx, LockParams{}); err != nil {
		t.Fatal(err)
	}
	if st, rep, err := c.LockedReport(ctx); err != nil || st != StateConfigLocked || rep == nil {
		t.Fatalf("locked: %v %v %v", st, rep, err)
	}
	f := NewClient(&failingSession{d: d, fail: MsgGetState}, id, nil)
	if _, rep, err := f.LockedReport(ctx); err == nil || errors.As(err, &nl) || rep != nil {
		t.Fatalf("state fails: %v %v", rep, err)
	}
}

// CycleSupported masks the lock flags to what the device supports (the
// unmasked flags make LOCK_INTERFACE fail), and sends nothing else when
// GET_TDISP_CAPABILITIES fails.
func TestCycleSupported(t *testing.T) {
	ctx := context.Background()
	all := LockParams{Flags: 0xffff}
	d, id := testDevice(t)
	if res, err := NewClient(d, id, nil).CycleSupported(ctx, all); err != nil || len(res.Steps) != 5 || d.State() != StateConfigUnlocked {
		t.Fatalf("masked: %v %+v", err, res)
	}
	d, id = testDevice(t)
	c := NewClient(d, id, nil)
	if _, err := c.GetCapabilities(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Cycle(ctx, all); err == nil || len(res.Steps) != 1 {
		t.Fatalf("unmasked: %v %+v", err, res)
	}
	d, id = testDevice(t)
	res, err := NewClient(&failingSession{d: d, fail: MsgGetCapabilities}, id, nil).CycleSupported(ctx, all)
	if err == nil || res != nil || d.State() != StateConfigUnlocked {
		t.Fatalf("capabilities fail: %v %+v", err, res)
	}
}
