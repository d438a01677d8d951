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

// TestBrokerAdopt: Adopt locks the TDI inside a session the caller opened
// (never calling Open), keeps it like Lock does and owns its release; a
// refused Adopt (TDI already held, TDI not CONFIG_UNLOCKED) ends the
// adopted session and calls release at once.
func TestBrokerAdopt(t *testing.T) {
	ctx := context.Background()
	rig, j := newBrokerRig(t)
	d, bdf := rig.add(t, "0000:3a:00.2", emu.SessionConfig{})
	opens := 0
	b, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j, Open: func(ctx context.Context, b pci.BDF) (tdisp.OwnedSession, func(), error) {
		opens++
		return rig.open(ctx, b)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	_, bdf2 := rig.add(t, "0000:3a:00.3", emu.SessionConfig{})
	// adopt opens a session with the device at from and adopts it for bdf.
	// (A new session with the same device would end the held one: VCA
	// resets an SPDM connection, sessions included.)
	adopt := func(owner string, from pci.BDF) (tdisp.OwnedSession, *int, []byte, error) {
		s, _, err := rig.open(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		opens-- // the rig's own open, not the broker's
		released := new(int)
		_, raw, err := b.Adopt(ctx, bdf, owner, s, func() { *released++ }, tdisp.LockParams{})
		return s, released, raw, err
	}
	s, released, raw, err := adopt("vm-1", bdf)
	if err != nil || len(raw) == 0 || *released != 0 {
		t.Fatalf("Adopt: %v, report %d bytes, released %d", err, len(raw), *released)
	}
	if d.TDI().State() != tdisp.StateConfigLocked || opens != -1 {
		t.Fatalf("TDI %v, broker opens %d", d.TDI().State(), opens+1)
	}
	if h := b.Held(); len(h) != 1 || h[0].Owner != "vm-1" || h[0].SessionID != s.Info().ID {
		t.Fatalf("held %+v", h)
	}
	if es, _ := j.Entries(); len(es) != 1 || es[0].Owner != "vm-1" || es[0].SessionID != s.Info().ID {
		t.Fatalf("journal %+v", es)
	}
	// Already held: the adopted session is ended and released, the held one kept.
	s2, released2, _, err := adopt("vm-2", bdf2)
	if !errors.Is(err, tdisp.ErrAlreadyHeld) || *released2 != 1 || s2.Err() == nil {
		t.Fatalf("second Adopt: %v released %d session err %v", err, *released2, s2.Err())
	}
	if err := b.Start(ctx, bdf); err != nil || d.TDI().State() != tdisp.StateRun {
		t.Fatalf("Start: %v, TDI %v", err, d.TDI().State())
	}
	if err := b.Stop(ctx, bdf); err != nil {
		t.Fatal(err)
	}
	if *released != 1 || s.Err() == nil || d.TDI().State() != tdisp.StateConfigUnlocked {
		t.Fatalf("after Stop: released %d, session err %v, TDI %v", *released, s.Err(), d.TDI().State())
	}
	if es, _ := j.Entries(); len(es) != 0 {
		t.Fatalf("journal after stop %+v", es)
	}
	// A TDI that is not CONFIG_UNLOCKED (locked in a session that then
	// ended: ERROR): LOCK is not sent, the session is ended and released.
	other, _, err := rig.open(ctx, bdf)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tdisp.InterfaceIDFor(bdf)
	oc := tdisp.NewClient(other, id, nil)
	if _, err := oc.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	s3, released3, _, err := adopt("vm-3", bdf)
	if err == nil || *released3 != 1 || s3.Err() == nil || len(b.Held()) != 0 {
		t.Fatalf("Adopt of a TDI locked elsewhere: %v released %d held %+v", err, *released3, b.Held())
	}
	if opens != -3 {
		t.Fatalf("the broker opened %d sessions of its own", opens+3)
	}
}
