package tdisp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// brokerRig is a set of software devices reachable by BDF.
type brokerRig struct {
	devs map[pci.BDF]*emu.Device
}

func (r *brokerRig) add(t *testing.T, bdf string, sc emu.SessionConfig) (*emu.Device, pci.BDF) {
	t.Helper()
	b, err := pci.ParseBDF(bdf)
	if err != nil {
		t.Fatal(err)
	}
	d, err := emu.New(emu.Config{BDF: b, Algorithms: spdm.AsymECDSAP256, Session: sc})
	if err != nil {
		t.Fatal(err)
	}
	r.devs[b] = d
	return d, b
}

func (r *brokerRig) open(ctx context.Context, bdf pci.BDF) (tdisp.OwnedSession, func(), error) {
	d := r.devs[bdf]
	if d == nil {
		return nil, nil, errors.New("no such device")
	}
	_, s, err := spdm.OpenSession(ctx, d.Direct(), d.DirectSecured(), &spdm.Options{Roots: d.Anchors()}, 0)
	if err != nil {
		return nil, nil, err
	}
	return s, func() {}, nil
}

func newBrokerRig(t *testing.T) (*brokerRig, *tdisp.Journal) {
	j, err := tdisp.OpenJournal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &brokerRig{devs: map[pci.BDF]*emu.Device{}}, j
}

// TestBrokerLifecycleKeepsSessionAlive: lock → start → (time passes:
// heartbeats at half the period, key updates every 30 s) → stop, with the
// journal following every step. Fake clock: testing/synctest.
func TestBrokerLifecycleKeepsSessionAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig, j := newBrokerRig(t)
		d, bdf := rig.add(t, "0000:3a:00.1", emu.SessionConfig{HeartbeatPeriod: 10})
		b, err := tdisp.NewBroker(tdisp.BrokerConfig{Open: rig.open, Journal: j, KeyUpdateEvery: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(ctx)
		rep, raw, err := b.Lock(ctx, bdf, "vm-1", tdisp.LockParams{})
		if err != nil || len(rep.MMIORanges) != 2 || len(raw) == 0 {
			t.Fatalf("Lock: %v %+v", err, rep)
		}
		if _, _, err := b.Lock(ctx, bdf, "vm-2", tdisp.LockParams{}); !errors.Is(err, tdisp.ErrAlreadyHeld) {
			t.Fatalf("second Lock: %v", err)
		}
		es, _ := j.Entries()
		if len(es) != 1 || es[0].Owner != "vm-1" || es[0].State != tdisp.StateConfigLocked || es[0].SessionID == 0 {
			t.Fatalf("journal %+v", es)
		}
		if err := b.Start(ctx, bdf); err != nil {
			t.Fatal(err)
		}
		if es, _ := j.Entries(); es[0].State != tdisp.StateRun {
			t.Fatalf("journal after start %+v", es)
		}
		time.Sleep(61 * time.Second)
		synctest.Wait()
		h := b.Held()
		if len(h) != 1 || h[0].Heartbeats != 12 || h[0].KeyUpdates != 2 || h[0].Err != nil || h[0].State != tdisp.StateRun {
			t.Fatalf("held %+v", h)
		}
		if st, err := b.State(ctx, bdf); err != nil || st != tdisp.StateRun || d.TDI().State() != tdisp.StateRun {
			t.Fatalf("state %v %v device %v", st, err, d.TDI().State())
		}
		if err := b.Stop(ctx, bdf); err != nil {
			t.Fatal(err)
		}
		if d.TDI().State() != tdisp.StateConfigUnlocked || len(b.Held()) != 0 {
			t.Fatalf("after Stop: device %v held %v", d.TDI().State(), b.Held())
		}
		if es, _ := j.Entries(); len(es) != 0 {
			t.Fatalf("journal after stop %+v", es)
		}
		if err := b.Stop(ctx, bdf); !errors.Is(err, tdisp.ErrNotHeld) {
			t.Fatalf("second Stop: %v", err)
		}
	})
}

// TestBrokerManySessions: one broker holds several TDIs at once.
func TestBrokerManySessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig, j := newBrokerRig(t)
		var bdfs []pci.BDF
		for _, s := range []string{"0000:01:00.0", "0000:02:00.0", "0000:03:00.0"} {
			_, b := rig.add(t, s, emu.SessionConfig{HeartbeatPeriod: 4})
			bdfs = append(bdfs, b)
		}
		b, _ := tdisp.NewBroker(tdisp.BrokerConfig{Open: rig.open, Journal: j})
		defer b.Close(ctx)
		var wg sync.WaitGroup
		for _, bdf := range bdfs {
			wg.Go(func() {
				if _, _, err := b.Lock(ctx, bdf, "vm-"+bdf.String(), tdisp.LockParams{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		h := b.Held()
		if len(h) != 3 {
			t.Fatalf("held %+v", h)
		}
		for _, x := range h {
			if x.Heartbeats != 4 || x.State != tdisp.StateConfigLocked {
				t.Fatalf("held %+v", x)
			}
		}
		if es, _ := j.Entries(); len(es) != 3 {
			t.Fatalf("journal %+v", es)
		}
	})
}

// TestBrokerSessionLost: a device reset kills the session; the keeper
// notices at the next heartbeat, reports it and journals ERROR.
func TestBrokerSessionLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig, j := newBrokerRig(t)
		d, bdf := rig.add(t, "0000:3a:00.1", emu.SessionConfig{HeartbeatPeriod: 10})
		var lost []error
		b, _ := tdisp.NewBroker(tdisp.BrokerConfig{Open: rig.open, Journal: j,
			Lost: func(_ pci.BDF, owner string, err error) { lost = append(lost, err) }})
		defer b.Close(ctx)
		if _, _, err := b.Lock(ctx, bdf, "vm-1", tdisp.LockParams{}); err != nil {
			t.Fatal(err)
		}
		d.Reset()
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if len(lost) != 1 || d.TDI().State() != tdisp.StateError {
			t.Fatalf("lost %v device %v", lost, d.TDI().State())
		}
		if h := b.Held(); len(h) != 1 || h[0].Err == nil {
			t.Fatalf("held %+v", h)
		}
		if es, _ := j.Entries(); len(es) != 1 || es[0].State != tdisp.StateError {
			t.Fatalf("journal %+v", es)
		}
		if _, err := b.State(ctx, bdf); err == nil {
			t.Fatal("State on a lost session")
		}
		// Stop releases the bookkeeping; the entry stays for Recover.
		if err := b.Stop(ctx, bdf); err == nil {
			t.Fatal("Stop of a lost session reported success")
		}
		if es, _ := j.Entries(); len(es) != 1 {
			t.Fatalf("journal after stop %+v", es)
		}
	})
}

// TestBrokerRecover: after a "crash" (sessions dropped without END_SESSION)
// a new broker stops the TDIs whose owner is gone and keeps the others.
func TestBrokerRecover(t *testing.T) {
	ctx := context.Background()
	rig, j := newBrokerRig(t)
	dGone, bGone := rig.add(t, "0000:3a:00.1", emu.SessionConfig{})
	dKept, bKept := rig.add(t, "0000:3b:00.1", emu.SessionConfig{})
	// The previous daemon: locks both, then dies (no STOP, no END_SESSION).
	for _, x := range []struct {
		b     pci.BDF
		owner string
	}{{bGone, "vm-gone"}, {bKept, "vm-alive"}} {
		s, _, err := rig.open(ctx, x.b)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := tdisp.InterfaceIDFor(x.b)
		if _, err := tdisp.NewClient(s, id, nil).Lock(ctx, tdisp.LockParams{}); err != nil {
			t.Fatal(err)
		}
		if err := j.Record(tdisp.JournalEntry{BDF: x.b.String(), Interface: id, Owner: x.owner, State: tdisp.StateConfigLocked, SessionID: s.Info().ID}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := tdisp.NewBroker(tdisp.BrokerConfig{Open: rig.open, Journal: j})
	res, err := b.Recover(ctx, func(o string) bool { return o == "vm-alive" })
	if err != nil {
		t.Fatal(err)
	}
	// The new connection's GET_VERSION ended the dead daemon's session on the
	// device, so the TDI was in ERROR when STOP came.
	if len(res) != 2 || res[0].Action != "stopped" || res[0].State != tdisp.StateError || res[1].Action != "kept" {
		t.Fatalf("results %+v", res)
	}
	if dGone.TDI().State() != tdisp.StateConfigUnlocked || dKept.TDI().State() != tdisp.StateConfigLocked {
		t.Fatalf("devices %v %v", dGone.TDI().State(), dKept.TDI().State())
	}
	if es, _ := j.Entries(); len(es) != 1 || es[0].Owner != "vm-alive" {
		t.Fatalf("journal %+v", es)
	}
	// An unreachable orphan is reported, not dropped.
	if err := j.Record(tdisp.JournalEntry{BDF: "0000:77:00.0", Owner: "x", State: tdisp.StateRun}); err != nil {
		t.Fatal(err)
	}
	res, err = b.Recover(ctx, func(o string) bool { return o == "vm-alive" })
	if err == nil || len(res) != 2 || res[1].Action != "failed" {
		t.Fatalf("unreachable orphan: %v %+v", err, res)
	}
	if es, _ := j.Entries(); len(es) != 2 {
		t.Fatalf("journal %+v", es)
	}
}

// TestBrokerKeyUpdateBeforeExhaustion: with the threshold at the top of the
// sequence space every keep-alive round renews the keys first.
func TestBrokerKeyUpdateBeforeExhaustion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rig, j := newBrokerRig(t)
		d, bdf := rig.add(t, "0000:3a:00.1", emu.SessionConfig{HeartbeatPeriod: 2})
		b, _ := tdisp.NewBroker(tdisp.BrokerConfig{Open: rig.open, Journal: j, KeyUpdateBelow: ^uint64(0)})
		defer b.Close(ctx)
		if _, _, err := b.Lock(ctx, bdf, "vm-1", tdisp.LockParams{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5500 * time.Millisecond)
		synctest.Wait()
		h := b.Held()
		if len(h) != 1 || h[0].KeyUpdates != 5 || h[0].Heartbeats != 5 || h[0].Err != nil {
			t.Fatalf("held %+v", h)
		}
		if st, err := b.State(ctx, bdf); err != nil || st != tdisp.StateConfigLocked || d.TDI().State() != tdisp.StateConfigLocked {
			t.Fatalf("state after key updates: %v %v", st, err)
		}
	})
}
