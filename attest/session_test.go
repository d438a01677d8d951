package attest_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"strings"
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

// countingCloser counts Close calls of config spaces opened for a fixture.
type countingCloser struct{ n *int }

func (c countingCloser) Close() error { *c.n++; return nil }

// TestFunctionSessionHeld: FunctionSession returns the session the
// evidence was gathered in, still open over the function's config space
// (not closed until Held.Close): a TDISP client can lock the TDI in it, and
// End ends it and closes the config space. A failed attestation keeps
// nothing open.
func TestFunctionSessionHeld(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:05:00.0", emu.Config{})
	opened, closed := 0, 0
	sys, err := pci.Open(fx.Tree.Dir, &pci.Options{Geteuid: func() int { return 0 },
		ConfigOpener: func(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
			c, _, err := fx.Open(b)
			if err != nil {
				return nil, nil, err
			}
			opened++
			return c, countingCloser{&closed}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	ev, held, err := attest.FunctionSession(ctx, sys, b, &attest.Options{Roots: d.Anchors(), TDISP: true})
	if err != nil || ev.Failure != nil || held == nil {
		t.Fatalf("FunctionSession: %v %+v %v", err, ev.Failure, held)
	}
	if ev.Session == nil || !ev.Session.Established || ev.Session.SessionID != held.Session.Info().ID {
		t.Fatalf("evidence session %+v, held %#x", ev.Session, held.Session.Info().ID)
	}
	if ev.TDISP == nil || ev.TDISP.State != "CONFIG_UNLOCKED" || !ev.MeasurementsSignatureVerified {
		t.Fatalf("evidence %+v measurements verified %v", ev.TDISP, ev.MeasurementsSignatureVerified)
	}
	if opened-closed != 1 {
		t.Fatalf("config spaces open while the session is held: %d (opened %d)", opened-closed, opened)
	}
	id, _ := tdisp.InterfaceIDFor(b)
	c := tdisp.NewClient(held.Session, id, nil)
	if _, err := c.GetVersion(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lock(ctx, tdisp.LockParams{}); err != nil {
		t.Fatalf("lock in the held session: %v", err)
	}
	if d.TDI().State() != tdisp.StateConfigLocked {
		t.Fatalf("TDI %v", d.TDI().State())
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := held.End(ctx); err != nil {
		t.Fatal(err)
	}
	if held.Session.Err() == nil || opened != closed {
		t.Fatalf("after End: session err %v, open %d", held.Session.Err(), opened-closed)
	}

	// A chain that does not verify: evidence with a Failure, no session.
	other, _ := emu.New(emu.Config{FreshKeys: true, Algorithms: spdm.AsymECDSAP384})
	ev, held, err = attest.FunctionSession(ctx, sys, b, &attest.Options{Roots: other.Anchors()})
	if err != nil || ev.Failure == nil || held != nil {
		t.Fatalf("untrusted device: %v %+v held %v", err, ev.Failure, held)
	}
	if opened != closed {
		t.Fatalf("a failed FunctionSession left %d config spaces open", opened-closed)
	}
	// A device that cannot do sessions: FailSession, nothing held.
	d2, b2 := fx.AddEmu(t, "0000:06:00.0", emu.Config{Faults: []emu.Fault{emu.FaultBadVerifyData}})
	ev, held, err = attest.FunctionSession(ctx, sys, b2, &attest.Options{Roots: d2.Anchors()})
	if err != nil || ev.Failure == nil || ev.Failure.Kind != attest.FailSession || held != nil || opened != closed {
		t.Fatalf("bad session: %v %+v held %v open %d", err, ev.Failure, held, opened-closed)
	}
}

// SessionOpenerFor takes each session's anchors from the function's
// identity (the daemon passes the policy's TrustAnchors); a function no
// anchors cover is refused before its mailbox is touched.
func TestSessionOpenerForAnchorsByIdentity(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	d, b := fx.AddEmu(t, "0000:06:00.0", emu.Config{})
	var asked []attest.Identity
	open := attest.SessionOpenerFor(fx.sys, t.TempDir(), nil, func(id attest.Identity) []*x509.Certificate {
		asked = append(asked, id)
		if id.VendorID == d.Identity().Vendor {
			return d.Anchors()
		}
		return nil
	})
	s, release, err := open(ctx, b)
	if err != nil || len(asked) != 1 || asked[0].BDF != b.String() {
		t.Fatalf("open: %v (asked %+v)", err, asked)
	}
	release()
	_ = s
	other := attest.SessionOpenerFor(fx.sys, t.TempDir(), nil, func(attest.Identity) []*x509.Certificate { return nil })
	before := d.Model().Stats()
	if _, _, err := other(ctx, b); err == nil || !strings.Contains(err.Error(), "unauthenticated device proves nothing") {
		t.Fatalf("no anchors: %v", err)
	}
	if after := d.Model().Stats(); after != before {
		t.Fatalf("mailbox touched without anchors: %+v → %+v", before, after)
	}
}
