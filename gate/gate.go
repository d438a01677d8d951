package gate

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// Reason codes gate adds: they describe what happened around the evaluation
// rather than the evidence. They live in policy's one table of codes.
const (
	CodeNoDevice = policy.CodeNoDevice
	CodeTPM      = policy.CodeTPM
	CodeLock     = policy.CodeLock
)

// DefaultConcurrency bounds how many functions are attested at once.
const DefaultConcurrency = 16

// RecordTimeout bounds recording the decisions of one request in the TPM.
// It runs after the caller's context, which may have ended during
// attestation: the decisions made (timeouts included) are still recorded.
const RecordTimeout = 10 * time.Second

// Errors of the gate itself (per-function failures are in Decision.Err).
var (
	ErrNoFunctions = errors.New("gate: no functions given")
	ErrNotBound    = errors.New("gate: function was not bound by vfio-gate (no record of its original driver)")
)

// Options configure a Gate. System, Policy and Recorder are required.
type Options struct {
	System   *pci.System
	Policy   *policy.Policy
	Recorder *tpm.Recorder
	// Evidence, when set, keeps every decision's evidence bundle by its
	// digest (the verdict event's evidence_digest) for offline re-checks.
	Evidence *evstore.Store
	// LockDir holds the per-function lock files; "" = pci.DefaultLockDir.
	LockDir string
	// StateDir keeps one record per function bound by vfio-gate (its
	// original driver, for Release) under StateDir/bound/. "" keeps them in
	// memory only (this Gate's lifetime).
	StateDir string
	// Concurrency bounds parallel attestations; 0 = DefaultConcurrency.
	Concurrency int
	// Attest is the template of every attestation; Roots are replaced by the
	// trust anchors of the policy rule matching each function. A nil
	// ChainCache becomes one in-memory cache for the Gate's lifetime.
	Attest attest.Options
	// Bind configures vfio.Apply and vfio.Release.
	Bind vfio.ApplyOptions
	// Logger receives one Info record per decision; nil discards.
	Logger *slog.Logger
	// Now is the clock of evaluations and records; nil = time.Now.
	Now func() time.Time
	// Watcher, when set, watches each function's config space during its
	// attestation: a DOE mailbox access by another process denies it with
	// mailbox-tampered (watch.go).
	Watcher AccessWatcher
	// Observer, when set, is told every decision and every TPM record (the
	// daemon's metrics). It must be quick and safe for concurrent use.
	Observer Observer
}

// Observer watches the pipeline: Decided once per function and request,
// after recording; Recorded once per Record call with its duration.
type Observer interface {
	Decided(d *Decision)
	Recorded(took time.Duration, events int, err error)
}

// Request names the functions of one check or bind.
type Request struct {
	BDFs         []pci.BDF
	Confidential bool
	// Domain is the VM the functions are for ("" = none), kept with the
	// binding and in the release event.
	Domain string
	// TDIs, in a confidential request, locks the TDI of every function
	// whose policy rule has tdisp.require_lock: inside the secure session
	// the function was just attested in, before the policy evaluates (the
	// locked state and its report are evidence), for Domain. An allowed
	// function's TDI stays locked for Domain, its session held by TDIs
	// (Decision.TDILocked); any other, and every one when Domain is ""
	// (a check that assigns nothing: the lock only proves it can be
	// locked), is stopped again before the call returns. nil: no TDI is
	// locked (such a rule then denies tdisp-not-locked).
	TDIs TDIKeeper
}

// TDIKeeper takes over the secure session a function was attested in,
// locks the function's TDI in it and keeps the session alive until Stop.
// The daemon adapts its TDISP broker (*tdisp.Broker) to it.
type TDIKeeper interface {
	// Adopt owns held (the session the function at bdf was attested in)
	// and release (closes held's config space and frees the function's
	// lock; called once the session ended) from the call on, whatever the
	// outcome. It locks the TDI inside held.Session for owner
	// and returns the TDI's state as TDISP names it (CONFIG_LOCKED) and
	// the raw DEVICE_INTERFACE_REPORT read in the session.
	Adopt(ctx context.Context, bdf pci.BDF, owner string, held *attest.Held, release func()) (state string, report []byte, err error)
	Stop(ctx context.Context, bdf pci.BDF) error
}

// Decision is the outcome for one function.
type Decision struct {
	BDF      pci.BDF
	Identity attest.Identity
	// Evidence is what attestation gathered (nil when the function could
	// not be read at all).
	Evidence *attest.Evidence
	// Verdict is the policy's verdict, with gate's own reasons added
	// (no-device, iommu-group-unsafe, tpm).
	Verdict        policy.Verdict
	EvidenceDigest []byte
	// Recorded: the verdict event is in the TPM log and PCR.
	Recorded bool
	// Bound: the function is now on vfio-pci (Bind only).
	Bound bool
	// TDILocked: the function's TDI was locked for this request
	// (Request.TDIs) and stays locked, held by Request.TDIs.
	TDILocked bool
	// Err is a failure that is not a policy verdict: the TPM (matches
	// tpm.ErrTPM) or binding (a vfio error).
	Err error
}

// Allowed reports whether the function may be passed (policy allowed and
// the decision was recorded). In audit mode it is true for would-be denies.
func (d *Decision) Allowed() bool { return d.Verdict.Allow }

// Gate runs the pipeline. It is safe for concurrent use: the per-function
// lock serialises work on one function, within and across processes.
type Gate struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	original map[pci.BDF]boundRecord // StateDir == ""
}

// New checks the options and returns a Gate.
func New(o Options) (*Gate, error) {
	switch {
	case o.System == nil:
		return nil, errors.New("gate: Options.System is nil")
	case o.Policy == nil:
		return nil, errors.New("gate: Options.Policy is nil (refusing to run without a policy)")
	case o.Recorder == nil:
		return nil, errors.New("gate: Options.Recorder is nil (every decision must be recorded)")
	}
	if o.StateDir != "" {
		// Root writes there: refuse a directory others could plant symlinks in.
		if err := statedir.Check(o.StateDir); err != nil {
			return nil, fmt.Errorf("gate: %w", err)
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Attest.ChainCache == nil {
		// Chains are cached by their digest (which the device signs over
		// in CHALLENGE): a warm check of a known device fetches no chain.
		o.Attest.ChainCache = attest.NewChainCache()
	}
	g := &Gate{o: o, log: o.Logger, now: o.Now, original: map[pci.BDF]boundRecord{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// Policy is the gate's policy.
func (g *Gate) Policy() *policy.Policy { return g.o.Policy }

// item is one function on its way through the pipeline.
type item struct {
	bdf    pci.BDF
	fn     *pci.Function
	unlock func() error
	absent bool // no such function when the locks were taken: no lock, decided no-device
	d      Decision
	keeper TDIKeeper // holds the TDI locked for this request (nil: none)
}

// lockAll takes the locks of bdfs in BDF order (a fixed order, so two
// overlapping requests cannot deadlock). On failure it releases what it took.
func (g *Gate) lockAll(ctx context.Context, bdfs []pci.BDF) ([]*item, error) {
	items := make([]*item, 0, len(bdfs))
	for _, b := range bdfs {
		if _, err := g.o.System.Function(b); errors.Is(err, pci.ErrNoDevice) {
			// No lock file for a function that does not exist (a typo'd
			// BDF); it is denied no-device without being looked at again.
			items = append(items, &item{bdf: b, absent: true})
			continue
		}
		unlock, err := pci.LockFunction(ctx, g.o.LockDir, b)
		if err != nil {
			unlockAll(items)
			return nil, fmt.Errorf("gate: %w", err)
		}
		items = append(items, &item{bdf: b, unlock: unlock})
	}
	return items, nil
}

func unlockAll(items []*item) error {
	var errs []error
	for i := len(items) - 1; i >= 0; i-- {
		if items[i].unlock != nil {
			errs = append(errs, items[i].unlock())
			items[i].unlock = nil
		}
	}
	return errors.Join(errs...)
}

// Check attests and evaluates every function of req and records each
// decision in the TPM. It returns one Decision per distinct BDF, in BDF
// order. The error is non-nil only when nothing could be decided (no
// functions, or the context ended while waiting for a lock).
func (g *Gate) Check(ctx context.Context, req Request) ([]Decision, error) {
	items, err := g.decide(ctx, req, false)
	if err != nil {
		return nil, err
	}
	defer unlockAll(items)
	g.settleTDIs(ctx, items, req)
	return decisions(items), nil
}

// Bind is Check followed by binding to vfio-pci, with the locks held
// throughout. The IOMMU group rule applies before anything is recorded:
// every other member of a function's group must itself be allowed in this
// request, or be exempt by policy (bridges, ports); otherwise every
// requested member of that group is denied with iommu-group-unsafe and
// nothing in it is bound. Each group is bound on its own (vfio.PlanBind,
// vfio.Apply); a failure undoes that group and is in Decision.Err.
func (g *Gate) Bind(ctx context.Context, req Request) ([]Decision, error) {
	items, pre, err := g.decideBind(ctx, req)
	if err != nil {
		return nil, err
	}
	defer unlockAll(items)
	g.settleTDIs(ctx, items, req) // before a denied function goes back to its host driver
	g.settlePreBound(ctx, items, pre, req)
	var rest []*item
	for _, it := range items {
		if !slices.ContainsFunc(slices.Collect(maps.Values(pre)), func(pb *preBound) bool { return slices.Contains(pb.bdfs, it.bdf) }) {
			rest = append(rest, it)
		}
	}
	g.bind(ctx, rest, req)
	g.settleTDIs(ctx, items, req) // a failed bind is not passed either
	return decisions(items), nil
}

func decisions(items []*item) []Decision {
	out := make([]Decision, len(items))
	for i, it := range items {
		out[i] = it.d
	}
	return out
}

// decide runs lock → attest → evaluate (in parallel) → group rule (bind) →
// record. The locks stay held; the caller releases them.
func (g *Gate) decide(ctx context.Context, req Request, bind bool) ([]*item, error) {
	bdfs := pci.Normalize(req.BDFs)
	if len(bdfs) == 0 {
		return nil, ErrNoFunctions
	}
	items, err := g.lockAll(ctx, bdfs)
	if err != nil {
		return nil, err
	}
	g.decideLocked(ctx, items, req, bind)
	return items, nil
}

// decideBind is decide for Bind: under the locks, functions on a host driver
// first move to vfio-pci (detachForAttestation), so their mailbox can be used.
func (g *Gate) decideBind(ctx context.Context, req Request) ([]*item, map[int]*preBound, error) {
	bdfs := pci.Normalize(req.BDFs)
	if len(bdfs) == 0 {
		return nil, nil, ErrNoFunctions
	}
	items, err := g.lockAll(ctx, bdfs)
	if err != nil {
		return nil, nil, err
	}
	pre := g.detachForAttestation(ctx, items)
	g.decideLocked(ctx, items, req, true)
	return items, pre, nil
}

func (g *Gate) decideLocked(ctx context.Context, items []*item, req Request, bind bool) {
	sem := make(chan struct{}, g.o.Concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g.attestOne(ctx, it, req, min(len(items), g.o.Concurrency))
		}()
	}
	wg.Wait()
	if bind {
		g.groupRule(items)
	}
	// One Recorder.Record for all: one log read and one PCR read per
	// request (per-function calls cost more than they overlap).
	g.record(ctx, items, req.Confidential)
	for _, it := range items {
		v := it.d.Verdict
		if g.o.Observer != nil {
			g.o.Observer.Decided(&it.d)
		}
		g.log.InfoContext(ctx, "decision", "bdf", it.bdf.String(), "decision", v.Decision, "would_deny", v.WouldDeny,
			"rule", v.Rule, "reasons", reasonCodes(v), "recorded", it.d.Recorded)
	}
}

// identityOf is the sysfs identity of fn (the DSN comes with attestation).
func identityOf(fn *pci.Function) attest.Identity {
	return attest.Identity{BDF: fn.BDF.String(), VendorID: fn.VendorID, DeviceID: fn.DeviceID,
		SubsystemVendorID: fn.SubsystemVendorID, SubsystemID: fn.SubsystemDeviceID, Class: fn.Class,
		Revision: fn.Revision, Driver: fn.Driver, IOMMUGroup: fn.IOMMUGroup}
}

// rootsFor returns the trust anchors attestation verifies chains against:
// the matching rule's. When the identity is not known before attestation
// (some rule matches on the DSN; a socket device named by its CMA SAN), the
// anchors of every rule: policy.Evaluate still accepts only an anchor of the
// rule that finally matches.
func (g *Gate) rootsFor(id attest.Identity) []*x509.Certificate {
	p := g.o.Policy
	unknown := id.VendorID == 0 && id.DeviceID == 0 // socket device identified by its CMA SAN later
	for _, r := range p.Rules {
		if r.Match.DSN != nil || unknown {
			var all []*x509.Certificate
			for _, r := range p.Rules {
				for _, c := range r.Anchors() {
					if !slices.ContainsFunc(all, c.Equal) {
						all = append(all, c)
					}
				}
			}
			return all
		}
	}
	return p.TrustAnchors(id)
}

func (g *Gate) attestOptions(id attest.Identity, inFlight int) *attest.Options {
	o := g.o.Attest
	if o.DOE == nil && inFlight > runtime.NumCPU() {
		// More mailboxes in flight than CPUs: wait for Data Object Ready
		// by sleeping, not spinning, or the spinners starve the others.
		o.DOE = attest.SleepingDOE()
	}
	o.Roots = g.rootsFor(id)
	if o.Now == nil {
		o.Now = g.now
	}
	if o.Logger == nil {
		o.Logger = g.log
	}
	return &o
}

// attestOne fills it.d: the function's identity, evidence and verdict.
// The evidence is what the policy rules that may match need (policy.NeedsFor:
// a secure session, the TDI state); a TDI the rule requires locked is
// locked first when the request brings a keeper (lockTDI).
func (g *Gate) attestOne(ctx context.Context, it *item, req Request, inFlight int) {
	confidential := req.Confidential
	d := &it.d
	d.BDF = it.bdf
	d.Identity = attest.Identity{BDF: it.bdf.String()}
	var fn *pci.Function
	err := fmt.Errorf("%w: %s", pci.ErrNoDevice, it.bdf)
	if !it.absent {
		fn, err = g.o.System.Function(it.bdf)
	}
	var ev *attest.Evidence
	var w *tamperWatch
	if err == nil {
		it.fn = fn
		d.Identity = identityOf(fn)
		w = g.startWatch(ctx, it.bdf)
		defer w.cancel(ctx)
		o := g.attestOptions(d.Identity, inFlight)
		needs := g.o.Policy.NeedsFor(d.Identity)
		o.Session = o.Session || needs.Session
		o.TDISP = o.TDISP || needs.TDISP
		if needs.TDISP && confidential && req.TDIs != nil {
			var held *attest.Held
			ev, held, err = attest.FunctionSession(ctx, g.o.System, it.bdf, o)
			if held != nil {
				g.lockTDI(ctx, it, ev, held, req)
			}
		} else {
			ev, err = attest.Function(ctx, g.o.System, it.bdf, o)
		}
	}
	switch {
	case err == nil && ev != nil:
	case errors.Is(err, pci.ErrNoDevice):
		d.Verdict = g.denyVerdict(CodeNoDevice, fmt.Sprintf("no PCI function %s exists", it.bdf))
		d.EvidenceDigest = nil
		return
	default:
		// Removed while being read (or an error attest should have turned
		// into a Failure): evaluate evidence that says so, so that the
		// policy's mode and wording apply.
		kind, msg := attest.FailDeviceGone, "the function could not be read"
		if err != nil {
			msg = err.Error()
			if !errors.Is(err, pci.ErrDeviceRemoved) {
				kind = attest.FailTransport
			}
		}
		ev = &attest.Evidence{Identity: d.Identity, Started: g.now(),
			Failure: &attest.Failure{Step: "sysfs", Kind: kind, Message: msg}}
	}
	if ev.Identity.BDF == "" {
		ev.Identity.BDF = it.bdf.String()
	}
	d.Evidence = ev
	d.Identity = ev.Identity
	g.endWatch(ctx, w, it.fn, ev)
	d.Verdict = g.o.Policy.Evaluate(ev, policy.Input{Confidential: confidential, Now: g.now()})
	d.EvidenceDigest = ev.Digest()
}

// lockTDI hands the session the function was attested in to req.TDIs,
// which locks the TDI in it for req.Domain; the locked state and the report
// become evidence. The function's lock goes with the session (released when
// the keeper stops the TDI). A failure is an attestation failure (tdisp).
func (g *Gate) lockTDI(ctx context.Context, it *item, ev *attest.Evidence, held *attest.Held, req Request) {
	unlock := it.unlock
	it.unlock = nil
	release := func() {
		held.Close()
		if unlock != nil {
			_ = unlock()
		}
	}
	state, raw, err := req.TDIs.Adopt(ctx, it.bdf, req.Domain, held, release)
	if err != nil {
		ev.Failure = &attest.Failure{Step: "tdisp-lock", Kind: attest.FailTDISP,
			Message: fmt.Sprintf("locking the TDI for %q: %v", req.Domain, err)}
		return
	}
	if ev.TDISP == nil {
		ev.TDISP = &attest.TDISP{}
	}
	ev.TDISP.State, ev.TDISP.Report, ev.TDISP.LockedFor = state, raw, cmp.Or(req.Domain, "vfio-gate")
	it.keeper = req.TDIs
	g.log.InfoContext(ctx, "TDI locked for the decision", "bdf", it.bdf.String(), "domain", req.Domain)
}

// settleTDIs stops the TDIs this request locked whose function is not
// passed (denied, not recorded, or failed to bind) or not assigned (no
// domain), and marks the others Decision.TDILocked. It runs on its own
// deadline: a TDI must not stay locked because the caller's context ended.
func (g *Gate) settleTDIs(ctx context.Context, items []*item, req Request) {
	for _, it := range items {
		if it.keeper == nil {
			continue
		}
		d := &it.d
		if d.Verdict.Allow && d.Recorded && d.Err == nil && req.Domain != "" {
			d.TDILocked = true
			continue
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
		if err := it.keeper.Stop(sctx, it.bdf); err != nil {
			g.log.ErrorContext(ctx, "TDI of a refused function could not be stopped (the keeper's journal keeps it for recovery)",
				"bdf", it.bdf.String(), "err", err)
		}
		cancel()
		it.keeper, d.TDILocked = nil, false
	}
}

// denyVerdict is a verdict gate makes itself (no evidence to evaluate):
// always deny, whatever the mode.
func (g *Gate) denyVerdict(c policy.Code, got string) policy.Verdict {
	return policy.Verdict{Decision: policy.DecisionDeny, Mode: g.o.Policy.Mode,
		Reasons: []policy.Reason{policy.ReasonFor(c, got)},
		Checks:  []policy.Check{{Name: string(c), Expected: "none", Got: got, Pass: false}}}
}

// addReason adds a deny reason to v as the policy would: in enforce mode the
// verdict becomes deny; in audit mode it stays allow and WouldDeny is set.
// force denies in every mode (TPM failures: fail closed).
func addReason(v *policy.Verdict, r policy.Reason, check policy.Check, force bool) {
	if !slices.ContainsFunc(v.Reasons, func(x policy.Reason) bool { return x.Code == r.Code }) {
		v.Reasons = append(v.Reasons, r)
	}
	v.Checks = append(v.Checks, check)
	if v.Mode == policy.ModeAudit && !force {
		v.Decision, v.Allow, v.WouldDeny = policy.DecisionAllow, true, true
		return
	}
	v.Decision, v.Allow = policy.DecisionDeny, false
}

func reasonCodes(v policy.Verdict) []string {
	out := make([]string, 0, len(v.Reasons))
	for _, r := range v.Reasons {
		out = append(out, string(r.Code))
	}
	return out
}

// groupRule denies every requested function whose IOMMU group has a member
// that is neither allowed in this request nor exempt by policy.
func (g *Gate) groupRule(items []*item) {
	byBDF := map[pci.BDF]*item{}
	for _, it := range items {
		byBDF[it.bdf] = it
	}
	for _, it := range items {
		if it.fn == nil || it.fn.IOMMUGroup == nil {
			continue // nothing to bind, or no IOMMU: vfio says so
		}
		var bad []string
		for _, m := range it.fn.GroupMembers {
			if m == it.bdf {
				continue
			}
			if other, ok := byBDF[m]; ok {
				if !other.d.Verdict.Allow || len(other.d.Verdict.Reasons) > 0 {
					bad = append(bad, fmt.Sprintf("%s is denied (%s)", m, joinCodes(other.d.Verdict)))
				}
				continue
			}
			mf, err := g.o.System.Function(m)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s cannot be read (%v)", m, err))
				continue
			}
			if !g.o.Policy.Exempt(mf.Class) {
				drv := cmp.Or(mf.Driver, "none")
				bad = append(bad, fmt.Sprintf("%s (class 0x%06x, driver %s) is not being bound and not exempt", m, mf.Class, drv))
			}
		}
		if len(bad) == 0 {
			continue
		}
		detail := fmt.Sprintf("IOMMU group %d: %s", *it.fn.IOMMUGroup, joinList(bad))
		addReason(&it.d.Verdict, policy.ReasonFor(policy.CodeIOMMUGroupUnsafe, detail),
			policy.Check{Name: "iommu_group", Expected: "every other member allowed or exempt", Got: joinList(bad)}, false)
	}
}

func joinCodes(v policy.Verdict) string {
	if len(v.Reasons) == 0 {
		return v.Decision
	}
	return joinList(reasonCodes(v))
}

func joinList(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// record extends and logs every decision in one Recorder.Record call (one
// log read, events in BDF order). A function whose verdict event did not
// make it into the log is denied with reason tpm, in every mode.
func (g *Gate) record(ctx context.Context, items []*item, confidential bool) {
	now := g.now()
	var events []tpm.Event
	verdictAt := make([]int, len(items)) // index of each item's verdict event
	for i, it := range items {
		d := &it.d
		name := it.bdf.String()
		if d.Identity.BDF == "" && d.Identity.Socket != "" {
			name = "socket:" + d.Identity.Socket
		}
		td := tpm.Decision{BDF: name, VendorID: d.Identity.VendorID, DeviceID: d.Identity.DeviceID,
			DSN: d.Identity.DSN, Rule: d.Verdict.Rule, Allow: d.Verdict.Allow, Mode: string(d.Verdict.Mode),
			Reasons: reasonCodes(d.Verdict), EvidenceDigest: d.EvidenceDigest, Confidential: confidential, Time: now}
		evs, err := EventsFor(d.Evidence, td)
		if err != nil {
			// Evidence tpm cannot encode: record the verdict alone, and deny.
			addReason(&d.Verdict, policy.ReasonFor(policy.CodeProtocol, "the evidence cannot be encoded as TPM events: "+err.Error()),
				policy.Check{Name: "tpm.events", Expected: "encodable evidence", Got: err.Error()}, true)
			td.Allow, td.Reasons = false, reasonCodes(d.Verdict)
			evs = []tpm.Event{tpm.VerdictEvent(td)}
		}
		events = append(events, evs...)
		verdictAt[i] = len(events) - 1
	}
	// Record even when the caller's deadline passed during attestation (a
	// timeout deny must be recorded too), within a bound of its own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	recStart := time.Now()
	recs, err := g.o.Recorder.Record(rctx, events...)
	if g.o.Observer != nil {
		g.o.Observer.Recorded(time.Since(recStart), len(events), err)
	}
	if err == nil && len(recs) != len(events) {
		err = fmt.Errorf("tpm: %d of %d events recorded", len(recs), len(events))
	}
	for i, it := range items {
		if verdictAt[i] < len(recs) {
			it.d.Recorded = true
			g.storeBundle(ctx, &it.d, confidential, now)
			continue
		}
		if err == nil {
			err = errors.New("tpm: event not recorded")
		}
		it.d.Err = err
		addReason(&it.d.Verdict, policy.ReasonFor(CodeTPM, "the decision could not be recorded in the TPM: "+err.Error()),
			policy.Check{Name: "tpm", Expected: "decision extended and logged", Got: err.Error()}, true)
	}
}

// storeBundle keeps the evidence of a recorded decision. A failure is
// logged, not a deny: the decision and its digest are in the TPM log, the
// bundle only lets it be re-checked later.
func (g *Gate) storeBundle(ctx context.Context, d *Decision, confidential bool, now time.Time) {
	if g.o.Evidence == nil || d.Evidence == nil || len(d.EvidenceDigest) == 0 {
		return
	}
	ej, err := d.Evidence.CanonicalJSON()
	if err == nil {
		verdict := "deny"
		if d.Verdict.Allow {
			verdict = "allow"
		}
		b := evstore.New(ej, evstore.Decision{BDF: d.Identity.BDF, Verdict: verdict, Rule: d.Verdict.Rule,
			Mode: string(d.Verdict.Mode), Reasons: reasonCodes(d.Verdict), Confidential: confidential, Time: now})
		if b.Digest != hex.EncodeToString(d.EvidenceDigest) {
			err = fmt.Errorf("bundle digest %s is not the recorded evidence digest", b.Digest)
		} else {
			err = g.o.Evidence.Put(b)
		}
	}
	if err != nil {
		g.log.WarnContext(ctx, "evidence bundle not stored", "bdf", d.Identity.BDF, "err", err)
	}
}
