package attest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// TestFunctionSession: Options.Session and TDISP run the measurements
// inside a secure session over the DOE mailbox and read the TDI state.
func TestFunctionSession(t *testing.T) {
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:05:00.0", emu.Config{Session: emu.SessionConfig{AEAD: spdm.AEADChaCha20Poly1305}})
	ev, err := attest.Function(context.Background(), fx.sys, b, &attest.Options{Roots: d.Anchors(), Session: true, TDISP: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Failure != nil {
		t.Fatalf("failure %+v", ev.Failure)
	}
	s := ev.Session
	if s == nil || !s.Established || s.AEAD != spdm.AEADChaCha20Poly1305.String() || s.DHE == "" || s.SessionID == 0 || s.Version != "1.2" {
		t.Fatalf("session %+v", s)
	}
	if !ev.MeasurementsSignatureVerified || len(ev.Measurements) == 0 {
		t.Fatal("measurements in the session not verified")
	}
	if ev.TDISP == nil || ev.TDISP.State != tdisp.StateConfigUnlocked.String() || ev.TDISP.Version != "1.0" {
		t.Fatalf("tdisp %+v", ev.TDISP)
	}
	if d.TDI().State() != tdisp.StateConfigUnlocked {
		t.Fatal("attest changed the TDI state")
	}
}

// TestFunctionSessionFaults: a session fault is a FailSession failure and
// no session is reported established.
func TestFunctionSessionFaults(t *testing.T) {
	for _, f := range []emu.Fault{emu.FaultBadVerifyData, emu.FaultBadTag} {
		fx := newFixture(t)
		d, b := fx.AddEmu(t, "0000:05:00.0", emu.Config{Faults: []emu.Fault{f}})
		ev, err := attest.Function(context.Background(), fx.sys, b, &attest.Options{Roots: d.Anchors(), Session: true})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Failure == nil || (f == emu.FaultBadVerifyData && (ev.Failure.Kind != attest.FailSession || ev.Session.Established)) {
			t.Fatalf("%v: failure %+v session %+v", f, ev.Failure, ev.Session)
		}
		if ev.MeasurementsSignatureVerified {
			t.Fatalf("%v: measurements verified through a broken session", f)
		}
	}
}

// TestSessionOpenerWithBroker: attest.SessionOpener drives a tdisp.Broker
// over the DOE mailbox of a sysfs fixture: lock, start, stop; the
// per-function lock is held while the session lives.
func TestSessionOpenerWithBroker(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:05:00.0", emu.Config{})
	lockDir := t.TempDir()
	j, err := tdisp.OpenJournal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Open: attest.SessionOpener(fx.sys, lockDir, &attest.Options{Roots: d.Anchors()}), Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close(ctx)
	if _, _, err := br.Lock(ctx, b, "vm", tdisp.LockParams{}); err != nil {
		t.Fatal(err)
	}
	if err := br.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	if d.TDI().State() != tdisp.StateRun {
		t.Fatalf("TDI %v", d.TDI().State())
	}
	// The function is locked while the broker holds the session.
	lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := pci.LockFunction(lctx, lockDir, b); err == nil {
		t.Fatal("per-function lock free while the session lives")
	}
	if err := br.Stop(ctx, b); err != nil {
		t.Fatal(err)
	}
	unlock, err := pci.LockFunction(ctx, lockDir, b)
	if err != nil {
		t.Fatalf("lock not released after Stop: %v", err)
	}
	_ = unlock()
	// Wrong anchors: the opener refuses (chain not verified).
	other, _ := emu.New(emu.Config{FreshKeys: true, Algorithms: spdm.AsymECDSAP384})
	if _, _, err := attest.OpenSession(ctx, fx.sys, b, lockDir, &attest.Options{Roots: other.Anchors()}); !errors.Is(err, spdm.ErrChainNotVerified) {
		t.Fatalf("wrong anchors: %v", err)
	}
}
