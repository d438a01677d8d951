package daemon_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// lockingBackend rewrites the world's policy so that the nvme rule also
// requires a locked TDI (head: more top-level keys), and builds a backend
// whose session owner is a real tdisp.Broker over the software devices' DOE
// mailboxes (a fresh one each call, as a daemon restart would).
func (w *world) lockingBackend(head string) (*daemon.GateBackend, *tdisp.Broker, string) {
	t := w.t
	t.Helper()
	w.setPolicy(head, "    tdisp:\n      require_lock: true\n")
	lockDir := filepath.Join(w.dir, "locks")
	j, err := tdisp.OpenJournal(w.stateDir, nil)
	must(t, err)
	t.Cleanup(func() { j.Close() })
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j,
		Open: attest.SessionOpener(w.sys, lockDir, &attest.Options{Roots: w.pol.Rules[0].Anchors(), Timeout: 5 * time.Second})})
	must(t, err)
	t.Cleanup(func() { br.Close(context.Background()) })
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: lockDir, StateDir: w.stateDir,
		Attest: attest.Options{Timeout: 5 * time.Second}, Bind: w.kernel.ApplyOptions()})
	must(t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, TDIs: br})
	must(t, err)
	return b, br, lockDir
}

func (w *world) tdiState(b string) tdisp.State {
	return w.configs[bdf(w.t, b)].(*emu.Device).TDI().State()
}

func lockFree(t *testing.T, lockDir string, b pci.BDF) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	unlock, err := pci.LockFunction(ctx, lockDir, b)
	if err != nil {
		return false
	}
	_ = unlock()
	return true
}

// TestBackendPrepareLocksTDI: the libvirt flow for a confidential domain
// whose rule requires a locked TDI. prepare (check) attests the function in
// a secure session, locks its TDI there for the domain, decides on that
// locked evidence and keeps the session; start (domain/start) moves it to
// RUN; a re-check by the domain keeps its decision; another domain is
// denied in-use; release stops the TDI, ends the session and frees the
// function. A non-confidential domain gets no lock (deny tdisp-not-locked).
func TestBackendPrepareLocksTDI(t *testing.T) {
	w := newWorld(t)
	b, br, lockDir := w.lockingBackend("")
	ctx := t.Context()
	good := bdf(t, goodBDF)

	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "plain", BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != string(policy.CodeTDISPNotLocked) || r.Devices[0].TDIState != "" || len(br.Held()) != 0 {
		t.Fatalf("non-confidential: %+v held %+v", r, br.Held())
	}

	// Confidential without "lock": nothing is locked.
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "nolock", Confidential: true, BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != string(policy.CodeTDISPNotLocked) || len(br.Held()) != 0 {
		t.Fatalf("confidential without lock: %+v held %+v", r, br.Held())
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "nolock"}))

	// No domain (libvirt preflight through the daemon): the TDI is locked
	// for the decision only, and stopped again.
	r, err = b.Check(ctx, daemon.CheckRequest{Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "allow" || r.Devices[0].TDIState != "" || len(br.Held()) != 0 || w.tdiState(goodBDF) != tdisp.StateConfigUnlocked {
		t.Fatalf("domain-less check: %+v held %+v TDI %v", r, br.Held(), w.tdiState(goodBDF))
	}
	if !lockFree(t, lockDir, good) {
		t.Fatal("function lock held after a domain-less check")
	}

	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm1", Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "allow" || r.Devices[0].TDIState != "CONFIG_LOCKED" || r.Devices[0].Rule != "nvme" {
		t.Fatalf("prepare: %+v", r)
	}
	if st := w.tdiState(goodBDF); st != tdisp.StateConfigLocked {
		t.Fatalf("device TDI after prepare: %v", st)
	}
	status, err := b.Status(ctx)
	must(t, err)
	if len(status.TDIs) != 1 || status.TDIs[0].Domain != "vm1" || status.TDIs[0].State != "CONFIG_LOCKED" || len(status.Sessions) != 1 ||
		status.TDIs[0].Since.IsZero() || !status.Sessions[0].Since.Equal(status.TDIs[0].Since) {
		t.Fatalf("status %+v %+v", status.TDIs, status.Sessions)
	}
	if lockFree(t, lockDir, good) {
		t.Fatal("function lock free while its TDI session is held")
	}
	must(t, b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{good}}))
	if st := w.tdiState(goodBDF); st != tdisp.StateRun {
		t.Fatalf("device TDI after start: %v", st)
	}
	// A re-check by vm1 (libvirt start begin) keeps the decision at once.
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err = b.Check(qctx, daemon.CheckRequest{Domain: "vm1", Phase: daemon.PhaseStart, Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	if err != nil || r.Decision != "allow" || r.Devices[0].TDIState != "RUN" {
		t.Fatalf("start-phase re-check: %+v %v", r, err)
	}
	r, err = b.Check(qctx, daemon.CheckRequest{Domain: "vm2", Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	if err != nil || r.Decision != "deny" || codes(r.Devices[0]) != daemon.CodeInUse {
		t.Fatalf("other domain: %+v %v", r, err)
	}
	// The TPM holds the allow made on the locked evidence.
	var allow bool
	for _, v := range w.verdicts() {
		if v.BDF == goodBDF && v.Verdict == "allow" && v.Confidential {
			allow = true
		}
	}
	if !allow {
		t.Fatalf("no confidential allow of %s recorded: %+v", goodBDF, w.verdicts())
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	if st := w.tdiState(goodBDF); st != tdisp.StateConfigUnlocked || len(br.Held()) != 0 || !lockFree(t, lockDir, good) {
		t.Fatalf("after release: TDI %v, held %+v, lock free %v", st, br.Held(), lockFree(t, lockDir, good))
	}
	w.verifyLog(ctx)
}

// TestBackendPrepareLockDenied: a function denied at prepare (its TDI was
// locked for the decision) is unlocked again and not held; the domain's
// start is refused.
func TestBackendPrepareLockDenied(t *testing.T) {
	w := newWorld(t)
	b, br, lockDir := w.lockingBackend("")
	ctx := t.Context()
	good := bdf(t, goodBDF)
	// Other firmware at the same address: measurements no longer match.
	e, err := emu.New(emu.Config{BDF: good, Identity: gatetest.WithDSN(nvme, 1), Profile: "tampered", Algorithms: spdm.AsymECDSAP384})
	must(t, err)
	w.configs[good] = e
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "deny" || r.Devices[0].TDIState != "" || !strings.Contains(codes(r.Devices[0]), string(policy.CodeMeasurementMismatch)) {
		t.Fatalf("prepare: %+v", r)
	}
	if st := w.tdiState(goodBDF); st != tdisp.StateConfigUnlocked || len(br.Held()) != 0 || !lockFree(t, lockDir, good) {
		t.Fatalf("after deny: TDI %v, held %+v", st, br.Held())
	}
	if err := b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{good}}); err == nil {
		t.Fatal("start of a domain whose function was denied")
	}
}

// TestBackendDeferredLocksAtStart: a managed='yes' function on its host
// driver at prepare is deferred (nothing locked); at start begin, on
// vfio-pci, it is attested and its TDI locked for the domain; started
// begin moves it to RUN.
func TestBackendDeferredLocksAtStart(t *testing.T) {
	w := newWorld(t)
	b, br, _ := w.lockingBackend("")
	ctx := t.Context()
	host := bdf(t, hostBDF)
	req := daemon.CheckRequest{Domain: "vm1", Confidential: true, Lock: true, BDFs: []pci.BDF{host}, Managed: []pci.BDF{host}}
	r, err := b.Check(ctx, req)
	if err != nil || r.Decision != daemon.DecisionDeferred || len(br.Held()) != 0 {
		t.Fatalf("prepare: %+v %v held %+v", r, err, br.Held())
	}
	w.toVFIO(hostBDF)
	req.Phase = daemon.PhaseStart
	checkLocked(t, b, req)
	w.startAndRelease(b, br, "vm1", hostBDF)
}

// TestBackendStartAfterRestartRefused: a daemon restart between prepare
// and started begin ends the TDI's session (the new broker's Recover stops
// the orphan), so the domain's function no longer has the locked TDI its
// rule requires: start is refused (tdi-not-held), not passed unlocked; a
// start-phase re-check (libvirt's start begin) locks it again.
func TestBackendStartAfterRestartRefused(t *testing.T) {
	w := newWorld(t)
	b, br, _ := w.lockingBackend("")
	ctx := t.Context()
	good := bdf(t, goodBDF)
	checkLocked(t, b, daemon.CheckRequest{Domain: "vm1", Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	must(t, br.Close(ctx)) // the daemon stops: sessions end, the journal keeps the TDI
	b2, br2, _ := w.lockingBackend("")
	res, err := br2.Recover(ctx, func(string) bool { return false })
	if err != nil || len(res) != 1 || res[0].Action != "stopped" {
		t.Fatalf("recover: %+v %v", res, err)
	}
	var ae *daemon.APIError
	if err := b2.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{good}}); !errors.As(err, &ae) || ae.Code != "tdi-not-held" {
		t.Fatalf("start after restart: %v", err)
	}
	if st := w.tdiState(goodBDF); st != tdisp.StateConfigUnlocked {
		t.Fatalf("TDI %v", st)
	}
	// libvirt's start begin re-check attests and locks it again.
	checkLocked(t, b2, daemon.CheckRequest{Domain: "vm1", Phase: daemon.PhaseStart, Confidential: true, Lock: true, BDFs: []pci.BDF{good}})
	w.startAndRelease(b2, br2, "vm1", goodBDF)
}

// TestBackendLaunchSecurity: a domain's launchSecurity type the policy does
// not classify is refused (launch-security-unknown, recorded, nothing
// attested); one listed in libvirt.confidential_types makes the check
// confidential, with the TDI locked as for a built-in type.
func TestBackendLaunchSecurity(t *testing.T) {
	w := newWorld(t)
	b, br, _ := w.lockingBackend("")
	ctx := t.Context()
	good := bdf(t, goodBDF)
	n := len(w.verdicts())
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "future", LaunchSecurity: "cca", Lock: true, BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != daemon.CodeLaunchSecurityUnknown ||
		!strings.Contains(r.Devices[0].Reasons[0].Message, "libvirt.confidential_types") || len(br.Held()) != 0 {
		t.Fatalf("unknown type: %+v", r)
	}
	v := w.verdicts()
	if len(v) != n+1 || v[n].Verdict != "deny" || !v[n].Confidential || v[n].Reasons[0] != daemon.CodeLaunchSecurityUnknown {
		t.Fatalf("recorded %+v", v[n:])
	}
	if b.Held("future") != nil {
		t.Fatal("a refused domain holds functions")
	}
	// The policy lists it: confidential, locked.
	b2, br2, _ := w.lockingBackend("libvirt: {confidential_types: [cca]}\n")
	checkLocked(t, b2, daemon.CheckRequest{Domain: "future", LaunchSecurity: "cca", Lock: true, BDFs: []pci.BDF{good}})
	w.startAndRelease(b2, br2, "future", goodBDF)
}

// checkLocked runs req, which must allow every function with its TDI
// CONFIG_LOCKED.
func checkLocked(t *testing.T, b *daemon.GateBackend, req daemon.CheckRequest) {
	t.Helper()
	r, err := b.Check(t.Context(), req)
	if err != nil || r.Decision != "allow" {
		t.Fatalf("check %+v: %+v %v", req, r, err)
	}
	for _, d := range r.Devices {
		if d.TDIState != "CONFIG_LOCKED" {
			t.Fatalf("check %+v: %s TDI %q, want CONFIG_LOCKED", req, d.BDF, d.TDIState)
		}
	}
}

// startAndRelease plays started begin (the TDI of fn goes to RUN on the
// device) and release end (unlocked, nothing held).
func (w *world) startAndRelease(b *daemon.GateBackend, br *tdisp.Broker, domain, fn string) {
	t := w.t
	t.Helper()
	must(t, b.StartDomain(t.Context(), daemon.DomainRequest{Domain: domain, BDFs: []pci.BDF{bdf(t, fn)}}))
	if st := w.tdiState(fn); st != tdisp.StateRun {
		t.Fatalf("TDI after started: %v", st)
	}
	must(t, b.Release(t.Context(), daemon.DomainRequest{Domain: domain}))
	if st := w.tdiState(fn); st != tdisp.StateConfigUnlocked || len(br.Held()) != 0 {
		t.Fatalf("after release: TDI %v, held %+v", st, br.Held())
	}
}

// TestBackendTDISPUnavailableSentinel: without a session owner, every TDISP
// endpoint's error matches daemon.ErrTDISPUnavailable (as documented).
func TestBackendTDISPUnavailableSentinel(t *testing.T) {
	b := newWorld(t).backend()
	r := daemon.TDIRequest{BDF: bdf(t, goodBDF)}
	for name, fn := range map[string]func(context.Context, daemon.TDIRequest) (*daemon.TDIStatus, error){
		"lock": b.TDISPLock, "start": b.TDISPStart, "stop": b.TDISPStop, "state": b.TDISPState,
	} {
		if _, err := fn(t.Context(), r); !errors.Is(err, daemon.ErrTDISPUnavailable) {
			t.Errorf("%s: %v does not match daemon.ErrTDISPUnavailable", name, err)
		}
	}
}

// TestBackendConfidentialDomains: a domain listed in
// libvirt.confidential_domains is checked as confidential and its TDI
// locked even when the request (an old hook, a domain XML without
// launchSecurity) says neither; an unlisted one is not, so the rule's
// require_lock denies it; the list never makes a confidential request less
// so.
func TestBackendConfidentialDomains(t *testing.T) {
	w := newWorld(t)
	b, br, _ := w.lockingBackend("libvirt: {confidential_domains: [cvm-listed]}\n")
	ctx := t.Context()
	good := bdf(t, goodBDF)
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "plain", BDFs: []pci.BDF{good}})
	must(t, err)
	if r.Decision != "deny" || codes(r.Devices[0]) != "tdisp-not-locked" || len(br.Held()) != 0 {
		t.Fatalf("unlisted domain: %+v", r)
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "plain"}))
	checkLocked(t, b, daemon.CheckRequest{Domain: "cvm-listed", BDFs: []pci.BDF{good}})
	if h := br.Held(); len(h) != 1 || h[0].Owner != "cvm-listed" {
		t.Fatalf("held %+v", h)
	}
	v := w.verdicts()
	if last := v[len(v)-1]; last.Verdict != "allow" || !last.Confidential {
		t.Fatalf("recorded %+v", last)
	}
	w.startAndRelease(b, br, "cvm-listed", goodBDF)
	// A launchSecurity domain the list does not name stays confidential.
	checkLocked(t, b, daemon.CheckRequest{Domain: "snp", LaunchSecurity: "sev-snp", Lock: true, BDFs: []pci.BDF{good}})
	w.startAndRelease(b, br, "snp", goodBDF)
}
