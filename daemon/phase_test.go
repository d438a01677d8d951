package daemon_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// verdicts returns the verdict events in the TPM log by BDF (in order).
func (w *world) verdicts() []tpm.VerdictData {
	w.t.Helper()
	if _, err := os.Stat(w.logPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return gatetest.Events[tpm.VerdictData](w.t, w.logPath, tpm.KindVerdict)
}

// toVFIO plays libvirt's part for a managed='yes' hostdev between prepare
// and start: unbind the host driver, bind vfio-pci.
func (w *world) toVFIO(b string) {
	w.t.Helper()
	must(w.t, w.tree.Unbind(b))
	must(w.t, w.tree.Bind(b, "vfio-pci"))
}

// TestBackendDeferredToStart: a managed='yes' good device on its host
// driver is deferred at prepare (no decision recorded, reserved against
// other domains), allowed and recorded at start once on vfio-pci, and the
// driver is left to libvirt at release.
func TestBackendDeferredToStart(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	host := bdf(t, hostBDF)
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{host, bdf(t, goodBDF)}, Managed: []pci.BDF{host}})
	must(t, err)
	if r.Decision != daemon.DecisionDeferred || len(r.Devices) != 2 {
		t.Fatalf("prepare: %+v", r)
	}
	for _, d := range r.Devices {
		switch d.BDF.String() {
		case hostBDF:
			if d.Decision != daemon.DecisionDeferred || codes(d) != daemon.CodeDeferred ||
				!strings.Contains(d.Reasons[0].Message, "on host driver nvme") || !strings.Contains(d.Reasons[0].Message, "checked at start begin") {
				t.Fatalf("deferred: %+v", d)
			}
		case goodBDF:
			if d.Decision != "allow" {
				t.Fatalf("good (unbound, checked at prepare): %+v", d)
			}
		}
	}
	if v := w.verdicts(); len(v) != 1 || v[0].BDF != goodBDF {
		t.Fatalf("verdicts after prepare %+v: only the checked function may be recorded", v)
	}
	if w.kernel.DriverOf(hostBDF) != "nvme" {
		t.Fatal("prepare moved the deferred function")
	}
	if got := b.Held("vm1"); len(got) != 1 || got[0].String() != goodBDF {
		t.Fatalf("held after prepare %v: a deferred function is not held", got)
	}
	st, err := b.Status(ctx)
	must(t, err)
	var sawDeferred bool
	for _, d := range st.Devices {
		if d.BDF.String() == hostBDF {
			sawDeferred = d.Decision == daemon.DecisionDeferred && d.Domain == "vm1" && d.Driver == "nvme"
		}
	}
	if !sawDeferred {
		t.Fatalf("status devices %+v: want %s deferred for vm1", st.Devices, hostBDF)
	}
	// Reserved: another domain is denied in-use without touching it.
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm2", BDFs: []pci.BDF{host}, Managed: []pci.BDF{host}})
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != daemon.CodeInUse {
		t.Fatalf("vm2: %+v", r)
	}
	// A restart keeps the deferral.
	b = w.backend()
	w.toVFIO(hostBDF)
	n := len(w.verdicts())
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm1", Phase: daemon.PhaseStart, BDFs: []pci.BDF{host, bdf(t, goodBDF)}, Managed: []pci.BDF{host}})
	must(t, err)
	if r.Decision != "allow" || len(r.Devices) != 2 {
		t.Fatalf("start: %+v", r)
	}
	for _, d := range r.Devices {
		if d.Decision != "allow" || (d.BDF.String() == hostBDF && (d.Rule != "nvme" || d.EvidenceDigest == "")) {
			t.Fatalf("start device %+v", d)
		}
	}
	v := w.verdicts()
	if len(v) != n+1 || v[n].BDF != hostBDF || v[n].Verdict != "allow" {
		t.Fatalf("verdicts after start %+v: want exactly one new allow for %s (the prepare allow of %s stands)", v[n:], hostBDF, goodBDF)
	}
	if got := b.Held("vm1"); len(got) != 2 {
		t.Fatalf("held after start %v", got)
	}
	must(t, b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{host, bdf(t, goodBDF)}}))
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	if d := w.kernel.DriverOf(hostBDF); d != "vfio-pci" {
		t.Fatalf("release changed the driver of a function libvirt moved: %q", d)
	}
	if rel := w.releaseEvents(); len(rel) != 2 {
		t.Fatalf("release events %+v", rel)
	}
	w.verifyLog(ctx)
}

// prepareDeferred runs prepare for vm1 with host managed='yes' and checks it
// was deferred; it returns the request.
func prepareDeferred(t *testing.T, b *daemon.GateBackend, host pci.BDF) daemon.CheckRequest {
	t.Helper()
	req := daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{host}, Managed: []pci.BDF{host}}
	if r, err := b.Check(t.Context(), req); err != nil || r.Decision != daemon.DecisionDeferred {
		t.Fatalf("prepare: %+v %v", r, err)
	}
	return req
}

// TestBackendDeferredStillOnHostDriver: libvirt did not move the function:
// start denies mailbox-owned (recorded) without driving its mailbox.
func TestBackendDeferredStillOnHostDriver(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	host := bdf(t, hostBDF)
	req := prepareDeferred(t, b, host)
	req.Phase = daemon.PhaseStart
	r, err := b.Check(ctx, req)
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != string(policy.CodeMailboxOwned) ||
		!strings.Contains(r.Devices[0].Reasons[0].Message, "still on its host driver nvme at libvirt start begin") {
		t.Fatalf("start on host driver: %+v", r)
	}
	if v := w.verdicts(); len(v) != 1 || v[0].Verdict != "deny" || len(v[0].Reasons) != 1 || v[0].Reasons[0] != string(policy.CodeMailboxOwned) {
		t.Fatalf("verdicts %+v", v)
	}
	if len(b.Held("vm1")) != 0 {
		t.Fatal("denied function held")
	}
	// libvirt aborts the start and calls release end: nothing to undo.
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{host}}))
	if len(b.Domains()) != 0 || len(w.releaseEvents()) != 0 || w.kernel.DriverOf(hostBDF) != "nvme" {
		t.Fatalf("after release: domains %v, events %+v, driver %q", b.Domains(), w.releaseEvents(), w.kernel.DriverOf(hostBDF))
	}
}

// TestBackendDeferredTampered: the device on vfio-pci at start is not the
// one the policy accepts (its firmware measurement changed): deny, recorded.
func TestBackendDeferredTampered(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	host := bdf(t, hostBDF)
	req := prepareDeferred(t, b, host)
	meas := emu.GoodMeasurements()
	for i := range meas {
		if meas[i].Index == 2 {
			meas[i].Value = append([]byte("evil "), meas[i].Value...)
		}
	}
	id := nvme
	id.DSN = 0x00c0ffee00000003
	e, err := emu.New(emu.Config{BDF: host, Identity: id, Algorithms: spdm.AsymECDSAP384, Measurements: meas})
	must(t, err)
	w.configs[host] = e
	w.toVFIO(hostBDF)
	req.Phase = daemon.PhaseStart
	r, err := b.Check(ctx, req)
	must(t, err)
	if r.Decision != "deny" || r.Devices[0].Decision != "deny" || strings.Contains(codes(r.Devices[0]), "mailbox-owned") || len(r.Devices[0].Reasons) == 0 {
		t.Fatalf("tampered at start: %+v", r)
	}
	if v := w.verdicts(); len(v) != 1 || v[0].Verdict != "deny" || v[0].BDF != hostBDF {
		t.Fatalf("verdicts %+v", v)
	}
	if len(b.Held("vm1")) != 0 {
		t.Fatal("denied function held")
	}
	t.Logf("tampered: %s", codes(r.Devices[0]))
}

// TestBackendPreparePhases: what is not deferred at prepare.
func TestBackendPreparePhases(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	host := bdf(t, hostBDF)
	// managed='no' on a host driver: libvirt will not move it: mailbox-owned now.
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{host}})
	must(t, err)
	if r.Decision != "deny" || !strings.Contains(codes(r.Devices[0]), "mailbox-owned") || !strings.Contains(r.Devices[0].Reasons[0].Message, "not managed='yes'") {
		t.Fatalf("managed='no': %+v", r)
	}
	// managed='yes' but unbound: checked at prepare, not deferred.
	good := bdf(t, goodBDF)
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{good}, Managed: []pci.BDF{good}})
	if err != nil || r.Decision != "allow" {
		t.Fatalf("managed unbound: %+v %v", r, err)
	}
	var ae *daemon.APIError
	for _, bad := range []daemon.CheckRequest{
		{Domain: "vm1", BDFs: []pci.BDF{good}, Phase: "started"},
		{Domain: "vm1", BDFs: []pci.BDF{good}, Managed: []pci.BDF{host}},
	} {
		if _, err := b.Check(ctx, bad); !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("%+v: %v, want 400", bad, err)
		}
	}
	if _, err := b.Bind(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{good}, Phase: daemon.PhaseStart}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("bind with phase start: %v", err)
	}
	// A deferral never checked is forgotten at release, without an event.
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm3", BDFs: []pci.BDF{host}, Managed: []pci.BDF{host}})
	if err != nil || r.Decision != daemon.DecisionDeferred {
		t.Fatalf("vm3 prepare: %+v %v", r, err)
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm3"}))
	st, err := b.Status(ctx)
	must(t, err)
	last := st.Released[len(st.Released)-1]
	if _, ok := st.Domains["vm3"]; ok || last.Domain != "vm3" || len(last.Deferred) != 1 || last.Deferred[0] != host || len(last.BDFs) != 0 {
		t.Fatalf("after release of vm3: %+v", st)
	}
	if len(w.releaseEvents()) != 0 {
		t.Fatal("release event for a never-decided function")
	}
}
