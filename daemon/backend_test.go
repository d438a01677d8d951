package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/internal/testutil/schematest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Fixture functions: a good software device (attested, allowed), a plain
// NIC without DOE (denied: deny-unattested), and a good device on a host
// driver (mailbox-owned, as at libvirt prepare of a managed='yes' hostdev).
const (
	goodBDF   = "0000:3b:00.0"
	plainBDF  = "0000:3c:00.0"
	hostBDF   = "0000:3d:00.0"
	absentBDF = "0000:3e:00.0"
)

var nvme = gatetest.NVMe

type world struct {
	t        *testing.T
	dir      string
	tree     *sysfstest.Tree
	sys      *pci.System
	configs  map[pci.BDF]pci.ConfigSpace
	pol      *policy.Policy
	rec      *tpm.Recorder
	tp       transport.TPMCloser
	logPath  string
	kernel   *gatetest.Kernel
	stateDir string
}

var (
	must = gatetest.Must
	bdf  = gatetest.BDF
)

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), configs: map[pci.BDF]pci.ConfigSpace{}}
	var sysDir string
	w.tree, sysDir = gatetest.NewTree(t, w.dir)
	must(t, w.tree.Driver("nvme"))
	var anchors []byte
	for i, d := range []struct {
		bdf, driver string
		plain       bool
	}{{goodBDF, "", false}, {plainBDF, "", true}, {hostBDF, "nvme", false}} {
		b := bdf(t, d.bdf)
		id := gatetest.WithDSN(nvme, uint64(i+1))
		f := sysfstest.Function{BDF: d.bdf, Vendor: id.Vendor, Device: id.Device, SubVendor: id.SubVendor, SubDev: id.SubDevice,
			Class: id.Class, Revision: id.Revision, IOMMUGroup: 100 + i, Driver: d.driver}
		if d.plain {
			f.Vendor, f.Device, f.Class = 0x8086, 0x10d3, 0x020000
			f.Config = sysfstest.Header(f)
			w.configs[b] = gatetest.MemConfig(f.Config)
		} else {
			e, err := emu.New(emu.Config{BDF: b, Identity: id, Algorithms: spdm.AsymECDSAP384})
			must(t, err)
			anchors = e.AnchorsPEM()
			w.configs[b] = e
			f.Config = e.ConfigSpace().Snapshot()
		}
		must(t, w.tree.Add(f))
	}
	must(t, os.WriteFile(filepath.Join(w.dir, "root.pem"), anchors, 0o600))
	w.setPolicy("", "")
	var err error
	w.sys, err = pci.Open(sysDir, &pci.Options{ConfigOpener: w.opener, Geteuid: func() int { return 0 }})
	must(t, err)
	t.Cleanup(func() { w.sys.Close() })
	w.stateDir = filepath.Join(w.dir, "state")
	w.logPath = filepath.Join(w.stateDir, "events")
	w.tp, w.rec = gatetest.OpenTPM(t, w.logPath)
	w.kernel = gatetest.NewKernel(t, w.tree, w.dir)
	return w
}

// setPolicy writes and loads the world's policy: enforce mode, deny
// unattested functions, the nvme rule; head goes before it (top-level keys),
// ruleExtra is appended to the rule (keys at four spaces).
func (w *world) setPolicy(head, ruleExtra string) {
	w.t.Helper()
	pp := filepath.Join(w.dir, "policy.yaml")
	must(w.t, os.WriteFile(pp, []byte("version: 1\n"+head+`mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: deny-unattested
rules:
`+gatetest.NVMeRule()+ruleExtra), 0o600))
	var err error
	w.pol, err = policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	must(w.t, err)
}

func (w *world) opener(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
	c, ok := w.configs[b]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", pci.ErrNoDevice, b)
	}
	return c, gatetest.NopCloser{}, nil
}

// backend builds a gate and a backend over the world (a fresh one each
// call, as a daemon restart would).
func (w *world) backend() *daemon.GateBackend {
	w.t.Helper()
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: w.stateDir, Attest: attest.Options{Timeout: 5 * time.Second},
		Bind: w.kernel.ApplyOptions()})
	must(w.t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir})
	must(w.t, err)
	return b
}

// verifyLog fails the test unless the TPM log replays against the PCR.
func (w *world) verifyLog(ctx context.Context) {
	w.t.Helper()
	res, err := tpm.Verify(ctx, w.tp, w.logPath, w.rec.PCR())
	if err != nil || !res.OK {
		w.t.Fatalf("log verify %v %+v", err, res)
	}
}

// releaseEvents returns the release events in the TPM log, after checking
// the log replays against the PCR.
func (w *world) releaseEvents() []tpm.Release {
	w.t.Helper()
	return gatetest.Events[tpm.Release](w.t, w.logPath, tpm.KindRelease)
}

func codes(d daemon.DeviceDecision) string {
	var s []string
	for _, r := range d.Reasons {
		s = append(s, r.Code)
	}
	return strings.Join(s, ",")
}

func TestBackendCheckHoldsAllowedFunctions(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF), bdf(t, plainBDF)}})
	must(t, err)
	if r.Decision != "deny" || len(r.Devices) != 2 {
		t.Fatalf("decision %+v", r)
	}
	byBDF := map[string]daemon.DeviceDecision{}
	for _, d := range r.Devices {
		byBDF[d.BDF.String()] = d
	}
	if d := byBDF[goodBDF]; d.Decision != "allow" || d.Rule != "nvme" || d.EvidenceDigest == "" {
		t.Errorf("good: %+v", d)
	}
	if d := byBDF[plainBDF]; d.Decision != "deny" || !strings.Contains(codes(d), "no-cma") && !strings.Contains(codes(d), "unattested") {
		t.Errorf("plain: %+v", d)
	}
	if got := b.Held("vm1"); len(got) != 1 || got[0].String() != goodBDF {
		t.Fatalf("held %v, want only %s", got, goodBDF)
	}
	st, err := b.Status(ctx)
	must(t, err)
	if len(st.Decisions) != 2 || len(st.Domains["vm1"]) != 1 || len(st.Devices) != 1 || st.Devices[0].Bound ||
		!strings.HasPrefix(st.TDISP, "unavailable") {
		t.Fatalf("status %+v", st)
	}
	// No domain: decisions only, nothing held.
	if _, err := b.Check(ctx, daemon.CheckRequest{BDFs: []pci.BDF{bdf(t, goodBDF)}}); err != nil {
		t.Fatal(err)
	}
	if ds := b.Domains(); len(ds) != 1 {
		t.Fatalf("domains %v", ds)
	}
	var ae *daemon.APIError
	if _, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1"}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("empty: %v", err)
	}
	// An absent function is denied, not an error.
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm2", BDFs: []pci.BDF{bdf(t, absentBDF)}})
	if err != nil || r.Decision != "deny" || codes(r.Devices[0]) != "no-device" {
		t.Fatalf("absent: %+v %v", r, err)
	}
}

// TestBackendManagedPrepare: a function still on its host driver (libvirt
// prepare of managed='yes') is denied with mailbox-owned and the advice.
func TestBackendManagedPrepare(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	r, err := b.Check(t.Context(), daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, hostBDF)}})
	must(t, err)
	d := r.Devices[0]
	if r.Decision != "deny" || !strings.Contains(codes(d), "mailbox-owned") {
		t.Fatalf("host driver: %+v", r)
	}
	if msg := d.Reasons[0].Message; !strings.Contains(msg, "managed='yes'") || !strings.Contains(msg, "vfio-gate bind --domain vm1 "+hostBDF) {
		t.Fatalf("advice missing: %q", msg)
	}
	if w.kernel.DriverOf(hostBDF) != "nvme" {
		t.Fatal("check changed the driver")
	}
	// What the advice says: bind (through the daemon) moves it to vfio-pci,
	// attests it there and keeps it; the next prepare check allows it.
	r, err = b.Bind(t.Context(), daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, hostBDF)}})
	must(t, err)
	if r.Decision != "allow" || w.kernel.DriverOf(hostBDF) != "vfio-pci" {
		t.Fatalf("bind of a host-driver function: %+v, driver %q", r, w.kernel.DriverOf(hostBDF))
	}
	r, err = b.Check(t.Context(), daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, hostBDF)}})
	if err != nil || r.Decision != "allow" {
		t.Fatalf("prepare check after bind: %+v %v", r, err)
	}
	must(t, b.Release(t.Context(), daemon.DomainRequest{Domain: "vm1"}))
	if d := w.kernel.DriverOf(hostBDF); d != "nvme" {
		t.Fatalf("after release: driver %q, want nvme restored", d)
	}
}

func TestBackendBindReleaseRestart(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	r, err := b.Bind(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}})
	must(t, err)
	if r.Decision != "allow" || w.kernel.DriverOf(goodBDF) != "vfio-pci" {
		t.Fatalf("bind: %+v driver %q", r, w.kernel.DriverOf(goodBDF))
	}
	// Another domain asking for it is denied in-use, without touching it.
	r, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm2", BDFs: []pci.BDF{bdf(t, goodBDF), bdf(t, plainBDF)}})
	must(t, err)
	if r.Decision != "deny" || len(r.Devices) != 2 || r.Devices[0].BDF.String() != goodBDF || codes(r.Devices[0]) != daemon.CodeInUse {
		t.Fatalf("in use: %+v", r)
	}
	if got := b.Held("vm2"); len(got) != 0 {
		t.Fatalf("vm2 holds %v", got)
	}
	// Restart: a new backend over the same state dir knows what vm1 holds.
	b2 := w.backend()
	if got := b2.Held("vm1"); len(got) != 1 || got[0].String() != goodBDF {
		t.Fatalf("after restart: held %v", got)
	}
	st, err := b2.Status(ctx)
	must(t, err)
	if len(st.Devices) != 1 || !st.Devices[0].Bound || st.Devices[0].Driver != "vfio-pci" {
		t.Fatalf("status after restart %+v", st.Devices)
	}
	must(t, b2.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}}))
	must(t, b2.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	if d := w.kernel.DriverOf(goodBDF); d != "" {
		t.Fatalf("after release driver %q, want none (as before bind)", d)
	}
	rel := w.releaseEvents()
	if len(rel) != 1 || rel[0].BDF != goodBDF || rel[0].Domain != "vm1" {
		t.Fatalf("release events %+v", rel)
	}
	// Idempotent: again, and for a domain never seen: no error, no event.
	must(t, b2.Release(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}}))
	must(t, b2.Release(ctx, daemon.DomainRequest{Domain: "never-started"}))
	if n := len(w.releaseEvents()); n != 1 {
		t.Fatalf("%d release events after repeated release, want 1", n)
	}
	st, err = b2.Status(ctx)
	must(t, err)
	if _, held := st.Domains["vm1"]; held || len(st.Released) != 1 || st.Released[0].Domain != "vm1" || !st.Released[0].Recorded {
		t.Fatalf("status after release %+v", st)
	}
	// The state file survives and says the same.
	b3 := w.backend()
	if ds := b3.Domains(); len(ds) != 1 || ds[0] != "vm2" {
		t.Fatalf("after release + restart: %v", b3.Domains())
	}
	w.verifyLog(ctx)
}

// TestBackendReleaseManaged: functions checked for a domain but bound by
// libvirt (managed) get a release event; the driver is libvirt's business.
func TestBackendReleaseManaged(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	_, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF), bdf(t, plainBDF)}})
	must(t, err)
	// A release naming a function vm1 does not hold leaves it alone.
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF), bdf(t, plainBDF)}}))
	rel := w.releaseEvents()
	if len(rel) != 1 || rel[0].BDF != goodBDF || rel[0].Domain != "vm1" {
		t.Fatalf("release events %+v", rel)
	}
	if len(b.Domains()) != 0 {
		t.Fatal("domain still held")
	}
}

func TestBackendStartAndTDISP(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	var ae *daemon.APIError
	if err := b.StartDomain(ctx, daemon.DomainRequest{Domain: "vmx", BDFs: []pci.BDF{bdf(t, goodBDF)}}); !errors.As(err, &ae) || ae.Code != "not-checked" {
		t.Fatalf("start of unchecked domain: %v", err)
	}
	must(t, b.StartDomain(ctx, daemon.DomainRequest{Domain: "no-hostdevs"}))
	_, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, plainBDF)}})
	must(t, err)
	if err := b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, plainBDF)}}); !errors.As(err, &ae) || ae.Code != "not-checked" {
		t.Fatalf("start with a denied function: %v", err)
	}
	for name, fn := range map[string]func(context.Context, daemon.TDIRequest) (*daemon.TDIStatus, error){
		"lock": b.TDISPLock, "start": b.TDISPStart, "stop": b.TDISPStop, "state": b.TDISPState,
	} {
		_, err := fn(ctx, daemon.TDIRequest{BDF: bdf(t, goodBDF)})
		if !errors.As(err, &ae) || ae.Code != "tdisp-unavailable" || ae.Status != 501 || !strings.Contains(ae.Message, "session owner") {
			t.Errorf("tdisp %s: %v", name, err)
		}
	}
}

func TestBackendCorruptStateRefused(t *testing.T) {
	w := newWorld(t)
	must(t, os.MkdirAll(w.stateDir, 0o700))
	must(t, os.WriteFile(filepath.Join(w.stateDir, daemon.StateFileName), []byte("{not json"), 0o600))
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks")})
	must(t, err)
	if _, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, StateDir: w.stateDir}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt state: %v", err)
	}
}

// TestAPIEndToEnd serves a GateBackend on a unix socket and drives it with
// the Client, as the hook and the CLI do.
func TestAPIEndToEnd(t *testing.T) {
	testutil.Require(t, testutil.Root) // the daemon answers root peers only (SO_PEERCRED)
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	c := daemon.NewClient(gatetest.ServeDaemon(t, b))
	r, err := c.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}})
	if err != nil || r.Decision != "allow" {
		t.Fatalf("check %+v %v", r, err)
	}
	r, err = c.Check(ctx, daemon.CheckRequest{Domain: "vm2", BDFs: []pci.BDF{bdf(t, plainBDF)}})
	if err != nil || r.Decision != "deny" {
		t.Fatalf("check plain %+v %v", r, err)
	}
	must(t, c.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}}))
	var ae *daemon.APIError
	if _, err := c.TDISP(ctx, daemon.PathTDISPLock, daemon.TDIRequest{BDF: bdf(t, goodBDF)}); !errors.As(err, &ae) || ae.Status != 501 || ae.Code != "tdisp-unavailable" {
		t.Fatalf("tdisp lock over the API: %v", err)
	}
	must(t, c.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	must(t, c.Release(ctx, daemon.DomainRequest{Domain: "vm2"}))
	st, err := c.Status(ctx)
	must(t, err)
	if len(st.Domains) != 0 || len(st.Released) != 2 || len(st.Decisions) != 2 {
		t.Fatalf("status %+v", st)
	}
}

// TestBackendJournalRecovery: TDIs an earlier owner left in the TDISP
// journal show up in status and as reports after a (re)start.
func TestBackendJournalRecovery(t *testing.T) {
	w := newWorld(t)
	j, err := tdisp.OpenJournal(w.stateDir, nil)
	must(t, err)
	must(t, j.Record(tdisp.JournalEntry{BDF: goodBDF, Interface: 1, Owner: "vm-old", State: tdisp.StateRun, SessionID: 0xff00}))
	must(t, j.Close())
	b := w.backend()
	st, err := b.Status(t.Context())
	must(t, err)
	if len(st.TDIs) != 1 || st.TDIs[0].BDF.String() != goodBDF || st.TDIs[0].Domain != "vm-old" || st.TDIs[0].State != tdisp.StateRun.String() {
		t.Fatalf("tdis %+v", st.TDIs)
	}
	if len(st.Reports) != 1 || st.Reports[0].Kind != "tdisp-orphan" || st.Reports[0].BDF != goodBDF {
		t.Fatalf("reports %+v", st.Reports)
	}
}

// TestBackendConcurrentDomains: two domains asking for the same function at
// once: exactly one holds it, the other is denied in-use.
func TestBackendConcurrentDomains(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	ctx := t.Context()
	type res struct {
		dom string
		r   *daemon.CheckResponse
		err error
	}
	out := make(chan res, 2)
	for _, d := range []string{"vmA", "vmB"} {
		go func() {
			r, err := b.Check(ctx, daemon.CheckRequest{Domain: d, BDFs: []pci.BDF{bdf(t, goodBDF)}})
			out <- res{d, r, err}
		}()
	}
	allowed := 0
	for range 2 {
		x := <-out
		must(t, x.err)
		switch {
		case x.r.Decision == "allow":
			allowed++
		case codes(x.r.Devices[0]) != daemon.CodeInUse && !strings.Contains(codes(x.r.Devices[0]), daemon.CodeInUse):
			t.Errorf("%s denied with %s, want in-use", x.dom, codes(x.r.Devices[0]))
		}
	}
	if allowed != 1 || len(b.Held("vmA"))+len(b.Held("vmB")) != 1 {
		t.Fatalf("allowed %d, held vmA %v vmB %v", allowed, b.Held("vmA"), b.Held("vmB"))
	}
}

// fakeOwner is a TDISP session owner that tracks states in memory.
type fakeOwner struct {
	mu    sync.Mutex
	held  map[pci.BDF]*tdisp.Held
	calls []string
	dev   map[pci.BDF]tdisp.State // what the device says (State)
}

func (f *fakeOwner) Lock(_ context.Context, b pci.BDF, owner string, _ tdisp.LockParams) (*tdisp.InterfaceReport, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "lock "+b.String())
	if f.held[b] != nil {
		return nil, nil, tdisp.ErrAlreadyHeld
	}
	f.held[b] = &tdisp.Held{BDF: b, Owner: owner, State: tdisp.StateConfigLocked, SessionID: 0xabcd}
	f.dev[b] = tdisp.StateConfigLocked
	return &tdisp.InterfaceReport{}, nil, nil
}
func (f *fakeOwner) Adopt(ctx context.Context, b pci.BDF, owner string, s tdisp.OwnedSession, release func(), p tdisp.LockParams) (*tdisp.InterfaceReport, []byte, error) {
	// The fake cannot speak TDISP: it refuses, as a device would, and gives
	// the session back.
	f.mu.Lock()
	f.calls = append(f.calls, "adopt "+b.String())
	f.mu.Unlock()
	_ = s.End(ctx)
	release()
	return nil, nil, errors.New("fake owner: no TDISP")
}
func (f *fakeOwner) Start(_ context.Context, b pci.BDF) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start "+b.String())
	h := f.held[b]
	if h == nil {
		return tdisp.ErrNotHeld
	}
	h.State, f.dev[b] = tdisp.StateRun, tdisp.StateRun
	return nil
}
func (f *fakeOwner) State(_ context.Context, b pci.BDF) (tdisp.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[b] == nil {
		return 0, tdisp.ErrNotHeld
	}
	return f.dev[b], nil
}
func (f *fakeOwner) Stop(_ context.Context, b pci.BDF) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "stop "+b.String())
	if f.held[b] == nil {
		return tdisp.ErrNotHeld
	}
	delete(f.held, b)
	return nil
}
func (f *fakeOwner) Held() []tdisp.Held {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tdisp.Held
	for _, h := range f.held {
		out = append(out, *h)
	}
	return out
}

// TestBackendTDISPOwner: lock for a domain, start at the domain's start,
// a state change is reported and recorded, release stops the TDI.
func TestBackendTDISPOwner(t *testing.T) {
	w := newWorld(t)
	own := &fakeOwner{held: map[pci.BDF]*tdisp.Held{}, dev: map[pci.BDF]tdisp.State{}}
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: w.stateDir, Attest: attest.Options{Timeout: 5 * time.Second}})
	must(t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, TDIs: own})
	must(t, err)
	ctx := t.Context()
	good := bdf(t, goodBDF)
	var ae *daemon.APIError
	if _, err := b.TDISPLock(ctx, daemon.TDIRequest{BDF: good, Domain: "vm1"}); !errors.As(err, &ae) || ae.Code != "not-checked" {
		t.Fatalf("lock before check: %v", err)
	}
	_, err = b.Check(ctx, daemon.CheckRequest{Domain: "vm1", Confidential: true, BDFs: []pci.BDF{good}})
	must(t, err)
	st, err := b.TDISPLock(ctx, daemon.TDIRequest{BDF: good, Domain: "vm1"})
	if err != nil || st.State != "CONFIG_LOCKED" || st.SessionID != 0xabcd || st.Domain != "vm1" {
		t.Fatalf("lock: %+v %v", st, err)
	}
	if _, err := b.TDISPLock(ctx, daemon.TDIRequest{BDF: good, Domain: "vm1"}); !errors.As(err, &ae) || ae.Code != "tdi-held" {
		t.Fatalf("second lock: %v", err)
	}
	must(t, b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{good}}))
	if s, err := b.TDISPState(ctx, daemon.TDIRequest{BDF: good}); err != nil || s.State != "RUN" {
		t.Fatalf("state after start: %+v %v", s, err)
	}
	status, err := b.Status(ctx)
	must(t, err)
	if status.TDISP != "available" || len(status.TDIs) != 1 || len(status.Sessions) != 1 || status.Sessions[0].SessionID != 0xabcd {
		t.Fatalf("status %+v", status)
	}
	// Healthy: nothing reported. Then the device drops the TDI to ERROR.
	if left, err := b.PollTDIs(ctx); err != nil || len(left) != 0 {
		t.Fatalf("poll healthy: %v %v", left, err)
	}
	own.mu.Lock()
	own.dev[good] = tdisp.StateError
	own.mu.Unlock()
	left, err := b.PollTDIs(ctx)
	if err != nil || len(left) != 1 || left[0].State != "ERROR" {
		t.Fatalf("poll after error: %v %v", left, err)
	}
	if left, _ := b.PollTDIs(ctx); len(left) != 0 {
		t.Fatalf("the same exit reported twice: %v", left)
	}
	l, err := tpm.ReadBoot(w.logPath, 0)
	must(t, err)
	tdispEvents := 0
	for _, r := range l.Records {
		if r.Event.Kind == tpm.KindTDISP {
			tdispEvents++
		}
	}
	if tdispEvents != 1 {
		t.Fatalf("%d TDISP events in the log, want 1", tdispEvents)
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	if len(own.Held()) != 0 || own.calls[len(own.calls)-1] != "stop "+goodBDF {
		t.Fatalf("release did not stop the TDI: %v", own.calls)
	}
}

// TestBackendBrokerOverDOE: the real session owner (tdisp.Broker over
// attest.SessionOpener) against the software device's DOE mailbox: lock for
// the domain, start at the domain's start, state from the device, release
// stops the TDI and frees the function.
func TestBackendBrokerOverDOE(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	lockDir := filepath.Join(w.dir, "locks")
	j, err := tdisp.OpenJournal(w.stateDir, nil)
	must(t, err)
	defer j.Close()
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j,
		Open: attest.SessionOpener(w.sys, lockDir, &attest.Options{Roots: w.pol.Rules[0].Anchors(), Timeout: 5 * time.Second})})
	must(t, err)
	defer br.Close(context.Background())
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: lockDir, StateDir: w.stateDir,
		Attest: attest.Options{Timeout: 5 * time.Second}})
	must(t, err)
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, TDIs: br})
	must(t, err)
	good := bdf(t, goodBDF)
	r, err := b.Check(ctx, daemon.CheckRequest{Domain: "vm1", Confidential: true, BDFs: []pci.BDF{good}})
	if err != nil || r.Decision != "allow" {
		t.Fatalf("check %+v %v", r, err)
	}
	st, err := b.TDISPLock(ctx, daemon.TDIRequest{BDF: good, Domain: "vm1"})
	if err != nil || st.State != tdisp.StateConfigLocked.String() || st.SessionID == 0 {
		t.Fatalf("lock %+v %v", st, err)
	}
	must(t, b.StartDomain(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{good}}))
	if s, err := b.TDISPState(ctx, daemon.TDIRequest{BDF: good}); err != nil || s.State != tdisp.StateRun.String() {
		t.Fatalf("device state after start %+v %v", s, err)
	}
	if left, err := b.PollTDIs(ctx); err != nil || len(left) != 0 {
		t.Fatalf("poll: %v %v", left, err)
	}
	// A check while the session holds the function answers at once: the
	// domain keeps its decision, another domain is denied in-use.
	qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
	defer qcancel()
	r, err = b.Check(qctx, daemon.CheckRequest{Domain: "vm1", Confidential: true, BDFs: []pci.BDF{good}})
	if err != nil || r.Decision != "allow" || r.Devices[0].Rule != "nvme" {
		t.Fatalf("re-check by the TDI's domain: %+v %v", r, err)
	}
	r, err = b.Check(qctx, daemon.CheckRequest{Domain: "vm9", BDFs: []pci.BDF{good}})
	if err != nil || r.Decision != "deny" || codes(r.Devices[0]) != daemon.CodeInUse {
		t.Fatalf("check by another domain: %+v %v", r, err)
	}
	status, err := b.Status(ctx)
	must(t, err)
	if len(status.Sessions) != 1 || status.TDIs[0].Domain != "vm1" {
		t.Fatalf("status %+v", status)
	}
	must(t, b.Release(ctx, daemon.DomainRequest{Domain: "vm1"}))
	if len(br.Held()) != 0 {
		t.Fatalf("still held after release: %+v", br.Held())
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	unlock, err := pci.LockFunction(lctx, lockDir, good)
	if err != nil {
		t.Fatalf("function lock not freed after release: %v", err)
	}
	_ = unlock()
}

// The state file names its schema and holds IDs as hex strings; a state
// file written before that (no "schema", numeric IDs) still loads, and is
// rewritten in the new form.
func TestBackendStateSchemaAndOldFile(t *testing.T) {
	w := newWorld(t)
	b := w.backend()
	if _, err := b.Check(t.Context(), daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{bdf(t, goodBDF)}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.stateDir, daemon.StateFileName)
	data, err := os.ReadFile(path)
	must(t, err)
	schematest.Validate(t, "daemon-state", data)
	var doc struct {
		Schema  string `json:"schema"`
		Domains map[string]struct {
			Devices map[string]map[string]any `json:"devices"`
		} `json:"domains"`
	}
	must(t, json.Unmarshal(data, &doc))
	held := doc.Domains["vm1"].Devices[goodBDF]
	vendor, ok := held["vendor_id"].(string)
	if doc.Schema != daemon.StateSchema || !ok || !strings.HasPrefix(vendor, "0x") || len(vendor) != 6 {
		t.Fatalf("state file: schema %q, held device %v", doc.Schema, held)
	}
	v, err := strconv.ParseUint(vendor[2:], 16, 16)
	must(t, err)

	// The same state as an older vfio-gate wrote it.
	old := strings.Replace(string(data), `"schema": "`+daemon.StateSchema+`",`, "", 1)
	old = strings.ReplaceAll(old, `"vendor_id": "`+vendor+`"`, fmt.Sprintf(`"vendor_id": %d`, v))
	if old == string(data) || strings.Contains(old, vendor) || strings.Contains(old, `"schema"`) {
		t.Fatalf("old-form state not made:\n%s", old)
	}
	must(t, os.WriteFile(path, []byte(old), 0o600))
	b = w.backend()
	st, err := b.Status(t.Context())
	must(t, err)
	if got := st.Domains["vm1"]; len(got) != 1 || got[0] != goodBDF {
		t.Fatalf("old state file: vm1 holds %v", st.Domains)
	}
	if _, err := b.Check(t.Context(), daemon.CheckRequest{Domain: "vm2", BDFs: []pci.BDF{bdf(t, plainBDF)}}); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(path)
	must(t, err)
	if !strings.Contains(string(data), `"vendor_id": "`+vendor+`"`) || !strings.Contains(string(data), `"schema": "`+daemon.StateSchema+`"`) {
		t.Fatalf("state rewritten after loading the old file:\n%s", data)
	}
	schematest.Validate(t, "daemon-state", data)
	// A state file of a schema this vfio-gate does not know is refused.
	must(t, os.WriteFile(path, []byte(strings.Replace(string(data), daemon.StateSchema, "vfio-gate/daemon-state/v2", 1)), 0o600))
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks")})
	must(t, err)
	if _, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: w.rec, StateDir: w.stateDir}); err == nil || !strings.Contains(err.Error(), "daemon-state/v2") {
		t.Fatalf("v2 state file: %v", err)
	}
}
