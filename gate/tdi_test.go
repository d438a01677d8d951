package gate_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// requireLock is the fixture rule's tdisp block.
const requireLock = "    tdisp:\n      require_lock: true\n"

// keeper adapts a tdisp.Broker to gate.TDIKeeper, as the daemon does.
type keeper struct{ *tdisp.Broker }

func (k keeper) Adopt(ctx context.Context, b pci.BDF, owner string, held *attest.Held, release func()) (string, []byte, error) {
	_, raw, err := k.Broker.Adopt(ctx, b, owner, held.Session, release, tdisp.LockParams{})
	if err != nil {
		return "", nil, err
	}
	return tdisp.StateConfigLocked.String(), raw, nil
}

// newKeeper is a tdisp.Broker that must never open a session itself: the
// gate hands it the session each function was attested in.
func newKeeper(t *testing.T) keeper {
	t.Helper()
	j, err := tdisp.OpenJournal(t.TempDir(), nil)
	must(t, err)
	t.Cleanup(func() { j.Close() })
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j, Open: func(context.Context, pci.BDF) (tdisp.OwnedSession, func(), error) {
		t.Error("the keeper opened a session of its own")
		return nil, nil, errors.New("no")
	}})
	must(t, err)
	t.Cleanup(func() { br.Close(context.Background()) })
	return keeper{br}
}

// lockFree reports whether the per-function lock of b can be taken now.
func (w *world) lockFree(b pci.BDF) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	unlock, err := pci.LockFunction(ctx, filepath.Join(w.dir, "locks"), b)
	if err != nil {
		return false
	}
	_ = unlock()
	return true
}

func hasCode(v policy.Verdict, c policy.Code) bool {
	return slices.ContainsFunc(v.Reasons, func(r policy.Reason) bool { return r.Code == c })
}

// TestCheckLocksTDIs: a confidential check with a keeper locks, for the
// domain, the TDI of every function whose rule has tdisp.require_lock,
// inside the session it was attested in and before the policy evaluates:
// the allowed function's TDI stays CONFIG_LOCKED (held by the keeper, with
// the function's lock), its evidence says so (state, report, owner) and
// that evidence is what the TPM records; the denied function's TDI is
// stopped and its lock freed. Without a keeper, or for a non-confidential
// request, nothing is locked and the rule denies tdisp-not-locked with the
// state read in the session.
func TestCheckLocksTDIs(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t, policyOpts{extra: requireLock},
		dev{bdf: "0000:01:00.0", profile: "good"}, dev{bdf: "0000:02:00.0", profile: "tampered"})
	good, bad := bdf(t, "0000:01:00.0"), bdf(t, "0000:02:00.0")
	g := w.gate()
	// Without a keeper: the state is read in a session, nothing is locked.
	ds, err := g.Check(ctx, gate.Request{BDFs: []pci.BDF{good}, Confidential: true, Domain: "vm1"})
	must(t, err)
	if d := ds[0]; d.Allowed() || !hasCode(d.Verdict, policy.CodeTDISPNotLocked) || d.TDILocked ||
		d.Evidence.TDISP == nil || d.Evidence.TDISP.State != "CONFIG_UNLOCKED" || d.Evidence.Session == nil || !d.Evidence.Session.Established {
		t.Fatalf("no keeper: %+v evidence %+v", d.Verdict, d.Evidence.TDISP)
	}
	br := newKeeper(t)
	// Non-confidential: the keeper is not used.
	ds, err = g.Check(ctx, gate.Request{BDFs: []pci.BDF{good}, Domain: "vm1", TDIs: br})
	must(t, err)
	if ds[0].Allowed() || ds[0].TDILocked || len(br.Held()) != 0 {
		t.Fatalf("non-confidential: %+v held %+v", ds[0].Verdict, br.Held())
	}

	ds, err = g.Check(ctx, gate.Request{BDFs: []pci.BDF{good, bad}, Confidential: true, Domain: "vm1", TDIs: br})
	must(t, err)
	dg, db := ds[0], ds[1]
	if !dg.Allowed() || !dg.TDILocked || !dg.Recorded || len(dg.Verdict.Reasons) != 0 {
		t.Fatalf("good: %+v locked %v", dg.Verdict, dg.TDILocked)
	}
	if e := dg.Evidence.TDISP; e == nil || e.State != "CONFIG_LOCKED" || e.LockedFor != "vm1" || len(e.Report) == 0 {
		t.Fatalf("good evidence %+v", dg.Evidence.TDISP)
	}
	if st := w.emus[good].TDI().State(); st != tdisp.StateConfigLocked {
		t.Fatalf("good TDI on the device: %v", st)
	}
	held := br.Held()
	if len(held) != 1 || held[0].BDF != good || held[0].Owner != "vm1" || held[0].SessionID != dg.Evidence.Session.SessionID {
		t.Fatalf("keeper holds %+v (evidence session %#x)", held, dg.Evidence.Session.SessionID)
	}
	if w.lockFree(good) {
		t.Fatal("the function's lock is free while its TDI session is held")
	}
	if db.Allowed() || db.TDILocked || !hasCode(db.Verdict, policy.CodeMeasurementMismatch) {
		t.Fatalf("bad: %+v locked %v", db.Verdict, db.TDILocked)
	}
	if e := db.Evidence.TDISP; e == nil || e.State != "CONFIG_LOCKED" {
		t.Fatalf("bad evidence: it was decided on a locked TDI: %+v", db.Evidence.TDISP)
	}
	if st := w.emus[bad].TDI().State(); st != tdisp.StateConfigUnlocked {
		t.Fatalf("denied function's TDI left %v", st)
	}
	if !w.lockFree(bad) {
		t.Fatal("denied function's lock still held")
	}
	// The TPM log holds the decisions, with the digest of the locked evidence.
	vs := w.verifyLog()
	last := vs[len(vs)-2:]
	if last[0].Verdict != "allow" || last[0].BDF != good.String() || last[1].Verdict != "deny" ||
		!bytes.Equal(last[1].EvidenceDigest, db.EvidenceDigest) || !bytes.Equal(last[0].EvidenceDigest, dg.Evidence.Digest()) {
		t.Fatalf("recorded %+v", last)
	}
	// The keeper starts and stops it like any TDI it locked.
	must(t, br.Start(ctx, good))
	if st := w.emus[good].TDI().State(); st != tdisp.StateRun {
		t.Fatalf("after start: %v", st)
	}
	must(t, br.Stop(ctx, good))
	if st := w.emus[good].TDI().State(); st != tdisp.StateConfigUnlocked || !w.lockFree(good) {
		t.Fatalf("after stop: %v, lock free %v", st, w.lockFree(good))
	}
}

// TestCheckTDILockFails: a TDI that cannot be locked (not CONFIG_UNLOCKED:
// it was locked in a session that ended, so the device holds it in ERROR)
// is an attestation failure: deny tdisp-not-locked, recorded, nothing held,
// the function's lock freed.
func TestCheckTDILockFails(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t, policyOpts{extra: requireLock}, dev{bdf: "0000:01:00.0", profile: "good"})
	b := bdf(t, "0000:01:00.0")
	d := w.emus[b]
	_, s, err := spdm.OpenSession(ctx, d.Direct(), d.DirectSecured(), &spdm.Options{Roots: d.Anchors()}, 0)
	must(t, err)
	id, _ := tdisp.InterfaceIDFor(b)
	c := tdisp.NewClient(s, id, nil)
	_, err = c.GetVersion(ctx)
	must(t, err)
	_, err = c.Lock(ctx, tdisp.LockParams{})
	must(t, err)
	br := newKeeper(t)
	ds, err := w.gate().Check(ctx, gate.Request{BDFs: []pci.BDF{b}, Confidential: true, Domain: "vm1", TDIs: br})
	must(t, err)
	dd := ds[0]
	if dd.Allowed() || dd.TDILocked || !dd.Recorded || !hasCode(dd.Verdict, policy.CodeTDISPNotLocked) {
		t.Fatalf("decision %+v locked %v recorded %v", dd.Verdict, dd.TDILocked, dd.Recorded)
	}
	if f := dd.Evidence.Failure; f == nil || f.Step != "tdisp-lock" {
		t.Fatalf("failure %+v", f)
	}
	if len(br.Held()) != 0 || !w.lockFree(b) {
		t.Fatalf("held %+v, lock free %v", br.Held(), w.lockFree(b))
	}
}

// TestBindLocksTDIs: Bind with a keeper locks the allowed function's TDI
// and binds it; a function denied by the IOMMU group rule (after its TDI
// was locked) has its TDI stopped before anything else happens to it.
func TestBindLocksTDIs(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t, policyOpts{extra: requireLock},
		dev{bdf: "0000:01:00.0", profile: "good"},
		dev{bdf: "0000:02:00.0", profile: "good", group: 7}, dev{bdf: "0000:02:00.1", profile: "none", id: &nic, group: 7})
	good, grouped := bdf(t, "0000:01:00.0"), bdf(t, "0000:02:00.0")
	br := newKeeper(t)
	ds, err := w.gate().Bind(ctx, gate.Request{BDFs: []pci.BDF{good, grouped}, Confidential: true, Domain: "vm1", TDIs: br})
	must(t, err)
	if !ds[0].Allowed() || !ds[0].Bound || !ds[0].TDILocked || w.emus[good].TDI().State() != tdisp.StateConfigLocked {
		t.Fatalf("good: %+v bound %v locked %v err %v", ds[0].Verdict, ds[0].Bound, ds[0].TDILocked, ds[0].Err)
	}
	if ds[1].Allowed() || ds[1].Bound || ds[1].TDILocked || !hasCode(ds[1].Verdict, policy.CodeIOMMUGroupUnsafe) {
		t.Fatalf("grouped: %+v bound %v locked %v", ds[1].Verdict, ds[1].Bound, ds[1].TDILocked)
	}
	if st := w.emus[grouped].TDI().State(); st != tdisp.StateConfigUnlocked {
		t.Fatalf("group-denied TDI left %v", st)
	}
	if h := br.Held(); len(h) != 1 || h[0].BDF != good {
		t.Fatalf("held %+v", h)
	}
}

// TestCheckRequireSession: a rule with spdm.require_session makes the gate
// attest inside a secure session (policy.NeedsFor), so a device that can
// do sessions is allowed with its in-session evidence, and one whose
// session fails is denied session-required.
func TestCheckRequireSession(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t, policyOpts{}, dev{bdf: "0000:01:00.0", profile: "good"},
		dev{bdf: "0000:02:00.0", profile: "good", faults: []emu.Fault{emu.FaultBadVerifyData}})
	pp := filepath.Join(w.dir, "policy.yaml")
	text, err := os.ReadFile(pp)
	must(t, err)
	must(t, os.WriteFile(pp, bytes.Replace(text, []byte("require_cma_san: true"), []byte("require_cma_san: true\n      require_session: true"), 1), 0o600))
	w.policy, err = policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	must(t, err)
	if !w.policy.Rules[0].SPDM.RequireSession {
		t.Fatal("fixture: require_session not set")
	}
	ds, err := w.gate().Check(ctx, gate.Request{BDFs: []pci.BDF{bdf(t, "0000:01:00.0"), bdf(t, "0000:02:00.0")}, Confidential: true})
	must(t, err)
	if d := ds[0]; !d.Allowed() || d.Evidence.Session == nil || !d.Evidence.Session.Established || !d.Evidence.MeasurementsSignatureVerified {
		t.Fatalf("good: %+v session %+v", d.Verdict, d.Evidence.Session)
	}
	if d := ds[1]; d.Allowed() || !hasCode(d.Verdict, policy.CodeSessionRequired) {
		t.Fatalf("bad session: %+v", d.Verdict)
	}
}
