package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// maxDecisions caps the decisions Status keeps.
const maxDecisions = 64

// CodeLaunchSecurityUnknown is the reason code of every function of a
// domain whose launchSecurity type the policy does not classify.
const CodeLaunchSecurityUnknown = "launch-security-unknown"

// Check decides on every function of req (recorded in the TPM). With a
// domain, the allowed functions are remembered as held by it.
func (b *GateBackend) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	return b.decide(ctx, req, false)
}

// Bind is Check followed by binding the allowed IOMMU groups to vfio-pci;
// the original drivers are remembered for Release.
func (b *GateBackend) Bind(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	return b.decide(ctx, req, true)
}

// checkState is one check or bind on its way through the backend, in the
// style of crypto/tls's clientHandshakeStateTLS13: decide calls its steps
// in a straight line (validate, partition, gate, merge, persist), and each
// step's comment says which fields it needs and which it sets.
type checkState struct {
	b     *GateBackend
	req   CheckRequest
	bind  bool
	phase string // phase.Prepare or phase.Start

	// drivers is each function's driver before the check (System set).
	drivers map[pci.BDF]string

	// Set by partition: the functions the gate decides, and the decisions
	// the daemon makes itself.
	free []pci.BDF
	// inUse: denied in-use (another domain, or a TDI session, holds them).
	inUse []DeviceDecision
	// ownDenies: deferred at prepare and still on the host driver at start.
	ownDenies []DeviceDecision
	// fromSession: allows kept from a live TDI session locked for this domain.
	fromSession []DeviceDecision
	// kept: allows of prepare that stand at start.
	kept []DeviceDecision
	// deferred: managed='yes' functions on a host driver at prepare, with
	// that driver in deferredDriver.
	deferred       []DeviceDecision
	deferredDriver map[pci.BDF]string

	// Set by gate.
	decisions []gate.Decision

	// Set by merge.
	resp   *CheckResponse
	now    time.Time
	held   map[string]*heldDevice    // allowed by the gate, by BDF
	denied map[string]DeviceDecision // denied (except in-use), by BDF
}

func (b *GateBackend) decide(ctx context.Context, req CheckRequest, bind bool) (*CheckResponse, error) {
	hs := &checkState{b: b, req: req, bind: bind}
	if err := hs.validate(); err != nil {
		return nil, err
	}
	defer b.domains.lock(req.Domain)()
	lv := b.o.Gate.Policy().Libvirt
	if conf, known := lv.Confidential(req.LaunchSecurity); !known {
		return b.refuseLaunchSecurity(ctx, req), nil
	} else if conf {
		hs.req.Confidential = true
	}
	if req.Domain != "" && slices.Contains(lv.ConfidentialDomains, req.Domain) {
		// Listed by the policy: confidential and locked as the rule asks,
		// whatever the request said (it only ever adds gating).
		hs.req.Confidential, hs.req.Lock = true, true
	}
	hs.readDrivers()
	hs.partition()
	if err := hs.gate(ctx); err != nil {
		return nil, err
	}
	hs.recordOwn(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	hs.merge(ctx)
	if req.Domain == "" {
		return hs.resp, nil
	}
	if err := hs.persist(); err != nil {
		// Without the record a release could miss a function: fail closed.
		return nil, &Error{Code: CodeInternal, Message: err.Error()}
	}
	return hs.resp, nil
}

// validate checks the request and sets hs.phase.
func (hs *checkState) validate() error {
	req := hs.req
	if len(req.BDFs) == 0 {
		return badRequest("no functions given (bdfs is empty)")
	}
	if err := checkRequestStrings(req.Domain, req.LaunchSecurity, false); err != nil {
		return err
	}
	p, err := phase.Parse(req.Phase, hs.bind)
	if err != nil {
		return badRequest("%v", err)
	}
	hs.phase = p
	for _, m := range req.Managed {
		if !slices.Contains(req.BDFs, m) {
			return badRequest("managed lists %s, which bdfs does not", m)
		}
	}
	return nil
}

// readDrivers sets hs.drivers.
func (hs *checkState) readDrivers() {
	hs.drivers = map[pci.BDF]string{}
	if hs.b.o.System == nil {
		return
	}
	for _, f := range hs.req.BDFs {
		if fn, err := hs.b.o.System.Function(f); err == nil {
			hs.drivers[f] = fn.Driver
		}
	}
}

// partition sorts the functions (needs drivers): a function another domain
// holds, or whose TDI the session owner holds, is in use (maybe by a running
// guest): its mailbox is never touched; the rest go by libvirt's phase rules
// (phase.Decide) to the gate, a deferral, a kept allow or a deny.
func (hs *checkState) partition() {
	b, req := hs.b, hs.req
	tdiOwner, tdiStates := map[pci.BDF]string{}, map[pci.BDF]string{}
	if b.o.TDIs != nil {
		for _, h := range b.o.TDIs.Held() {
			tdiOwner[h.BDF], tdiStates[h.BDF] = h.Owner, h.State.String()
		}
	}
	hs.deferredDriver = map[pci.BDF]string{}
	for _, f := range req.BDFs {
		if owner, ok := tdiOwner[f]; ok {
			// The session owner holds the function's lock and mailbox for the
			// TDI's session: attesting again would wait for the lock. A TDI
			// locked for this very domain, which holds an allow decision for
			// it, keeps that decision (its live, authenticated session is the
			// evidence that it is the same device); anything else is in use.
			if h := b.heldDevice(req.Domain, f); h != nil && owner == req.Domain && req.Domain != "" {
				hs.fromSession = append(hs.fromSession, DeviceDecision{BDF: f, VendorID: h.VendorID, DeviceID: h.DeviceID,
					Decision: policy.DecisionAllow, Rule: h.Rule, EvidenceDigest: h.EvidenceDigest, Reasons: []Reason{},
					TDIState: tdiStates[f]})
				continue
			}
			hs.inUse = append(hs.inUse, inUseDecision(f, fmt.Sprintf("the TDI of %s is locked by the daemon for %q (vfio-gate status); stop it (tdisp stop) or release that domain first", f, owner)))
			continue
		}
		if owner := b.holder(f); owner != "" && owner != req.Domain {
			hs.inUse = append(hs.inUse, inUseDecision(f, fmt.Sprintf("%s is held by domain %s (vfio-gate status; or reserved for its start begin, deferred at its prepare); "+
				"it is not attested or passed to another domain until that domain is released", f, owner)))
			continue
		}
		hs.place(f)
	}
}

// place applies libvirt's phase rules to f, which no other domain holds.
func (hs *checkState) place(f pci.BDF) {
	b, req := hs.b, hs.req
	fn := phase.Function{Driver: hs.drivers[f], Managed: slices.Contains(req.Managed, f), Deferred: b.wasDeferred(req.Domain, f)}
	h := b.heldDevice(req.Domain, f)
	if h != nil {
		// A TDI the rule requires locked that is no longer held (daemon
		// restart, lost session) is checked and locked again.
		relock := req.Lock && req.Confidential && b.o.TDIs != nil
		fn.Allowed, fn.Relock = true, relock && b.requiresLock(h.Rule)
	}
	switch phase.Decide(hs.phase, hs.bind, req.Domain != "", fn) {
	case phase.Defer:
		hs.deferredDriver[f] = fn.Driver
		hs.deferred = append(hs.deferred, DeviceDecision{BDF: f, Decision: DecisionDeferred,
			Reasons: []Reason{{Code: CodeDeferred, Message: phase.DeferredMessage(fn.Driver)}}})
	case phase.Keep:
		hs.kept = append(hs.kept, DeviceDecision{BDF: f, VendorID: h.VendorID, DeviceID: h.DeviceID,
			Decision: policy.DecisionAllow, Rule: h.Rule, EvidenceDigest: h.EvidenceDigest, Reasons: []Reason{}})
	case phase.RefuseOnHost:
		hs.ownDenies = append(hs.ownDenies, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: string(policy.CodeMailboxOwned),
			Message: phase.StillOnHostMessage(f, fn.Driver, req.Domain)}}})
	default:
		hs.free = append(hs.free, f)
	}
}

func inUseDecision(f pci.BDF, msg string) DeviceDecision {
	return DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeInUse, Message: msg}}}
}

// gate has the gate decide on hs.free (check or bind; with a session owner
// and req.Lock it locks what tdisp.require_lock asks for, in the attested
// session) and sets hs.decisions.
func (hs *checkState) gate(ctx context.Context) error {
	if len(hs.free) == 0 {
		return nil
	}
	b := hs.b
	gr := gate.Request{BDFs: hs.free, Confidential: hs.req.Confidential, Domain: hs.req.Domain}
	if b.o.TDIs != nil && hs.req.Lock {
		gr.TDIs = tdiKeeper{b.o.TDIs}
	}
	var err error
	if hs.bind {
		hs.decisions, err = b.o.Gate.Bind(ctx, gr)
	} else {
		hs.decisions, err = b.o.Gate.Check(ctx, gr)
	}
	switch {
	case errors.Is(err, gate.ErrNoFunctions):
		return badRequest("%v", err)
	case err != nil:
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	return nil
}

// recordOwn records the decisions the daemon made itself (partition) in
// the TPM; a failure turns them into denies with the tpm reason.
func (hs *checkState) recordOwn(ctx context.Context) {
	hs.inUse = append(hs.inUse, hs.ownDenies...)
	hs.ownDenies = nil
	if len(hs.inUse)+len(hs.fromSession) > 0 {
		hs.b.recordOwn(ctx, hs.inUse, hs.fromSession, hs.req.Confidential)
	}
}

// merge builds hs.resp (needs partition and gate) from every decision, in
// this order: the daemon's denies, kept allows, session allows, the gate's
// decisions, deferrals; it sets hs.held and hs.denied and keeps the
// decisions for Status. A
// function another domain took while this one was attested is denied (its
// TDI, if the gate locked it, stopped). b.mu is held.
func (hs *checkState) merge(ctx context.Context) {
	b, req := hs.b, hs.req
	resp := &CheckResponse{Decision: policy.DecisionAllow, Devices: make([]DeviceDecision, 0, len(req.BDFs))}
	hs.resp, hs.now = resp, b.now().UTC()
	hs.held, hs.denied = map[string]*heldDevice{}, map[string]DeviceDecision{}
	for _, dd := range hs.inUse {
		resp.Devices = append(resp.Devices, dd)
		if dd.Reasons[0].Code != CodeInUse {
			hs.denied[dd.BDF.String()] = dd
		}
	}
	resp.Devices = append(resp.Devices, hs.kept...)
	resp.Devices = append(resp.Devices, hs.fromSession...)
	for _, d := range hs.decisions {
		dd := toDeviceDecision(d, hs.drivers[d.BDF], req.Domain, hs.phase, slices.Contains(req.Managed, d.BDF))
		if owner := b.holderLocked(d.BDF); owner != "" && owner != req.Domain && dd.Decision == policy.DecisionAllow {
			// Another domain took it while this one was being attested.
			dd.Decision = policy.DecisionDeny
			dd.Reasons = append(dd.Reasons, Reason{Code: CodeInUse, Message: fmt.Sprintf("%s was given to domain %s while it was being checked", d.BDF, owner)})
			if d.TDILocked {
				if err := b.o.TDIs.Stop(ctx, d.BDF); err != nil {
					b.log.ErrorContext(ctx, "TDI locked for a function another domain took could not be stopped", "bdf", d.BDF.String(), "err", err)
				}
				dd.TDIState = ""
			}
		}
		if dd.Decision != policy.DecisionAllow {
			hs.denied[d.BDF.String()] = dd
		} else {
			hs.held[d.BDF.String()] = &heldDevice{BDF: d.BDF, Rule: d.Verdict.Rule, VendorID: jsonhex.U16(d.Identity.VendorID),
				DeviceID: jsonhex.U16(d.Identity.DeviceID), DSN: (*jsonhex.U64)(d.Identity.DSN), Bound: d.Bound, OriginalDriver: hs.drivers[d.BDF],
				EvidenceDigest: dd.EvidenceDigest, Since: hs.now}
		}
		resp.Devices = append(resp.Devices, dd)
	}
	for _, dd := range hs.deferred {
		if owner := b.holderLocked(dd.BDF); owner != "" && owner != req.Domain {
			dd = inUseDecision(dd.BDF, fmt.Sprintf("%s was given to domain %s while this one was being prepared", dd.BDF, owner))
		}
		resp.Devices = append(resp.Devices, dd)
	}
	// deny when one is denied, else deferred when one is deferred.
	for _, dd := range resp.Devices {
		if dd.Decision == DecisionDeferred && resp.Decision == policy.DecisionAllow {
			resp.Decision = DecisionDeferred
		} else if dd.Decision != policy.DecisionAllow && dd.Decision != DecisionDeferred {
			resp.Decision = policy.DecisionDeny
		}
	}
	b.keepDecisionsLocked(resp.Devices)
}

// persist files the outcome under the domain (needs merge): allowed
// functions are held, denied ones noted, deferred ones reserved, then the
// state is saved. b.mu is held.
func (hs *checkState) persist() error {
	b, req := hs.b, hs.req
	dom := b.st.Domains[req.Domain]
	if dom == nil {
		dom = &domainState{Devices: map[string]*heldDevice{}}
		b.st.Domains[req.Domain] = dom
	}
	dom.Confidential, dom.Checked = req.Confidential, hs.now
	for k, h := range hs.held {
		if old := dom.Devices[k]; old != nil && old.Bound && !h.Bound {
			// Bound by an earlier bind for this domain: keep that record, Release must undo it.
			h.Bound, h.OriginalDriver = true, old.OriginalDriver
		}
		dom.Devices[k] = h
		delete(dom.Denied, k)
		delete(dom.Deferred, k)
	}
	for k, dd := range hs.denied {
		if dom.Denied == nil {
			dom.Denied = map[string]DeviceDecision{}
		}
		dom.Denied[k] = dd
		delete(dom.Deferred, k)
	}
	for _, dd := range hs.resp.Devices {
		if dd.Decision != DecisionDeferred {
			continue
		}
		k := dd.BDF.String()
		if dom.Deferred == nil {
			dom.Deferred = map[string]*deferredDevice{}
		}
		dom.Deferred[k] = &deferredDevice{BDF: dd.BDF, Driver: hs.deferredDriver[dd.BDF], Since: hs.now}
		delete(dom.Denied, k)
		if old := dom.Devices[k]; old != nil && !old.Bound {
			// An earlier allow was for the function on vfio-pci; it is back on
			// a host driver, so that decision no longer speaks for it.
			delete(dom.Devices, k)
		}
	}
	return b.saveLocked()
}

// refuseLaunchSecurity denies (and records) every function of req: its
// domain's launchSecurity type is neither built in nor listed by the
// policy, so whether it is confidential is unknown.
func (b *GateBackend) refuseLaunchSecurity(ctx context.Context, req CheckRequest) *CheckResponse {
	resp := &CheckResponse{Decision: policy.DecisionDeny, Devices: []DeviceDecision{}}
	for _, f := range req.BDFs {
		resp.Devices = append(resp.Devices, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeLaunchSecurityUnknown,
			Message: phase.UnknownLaunchSecurity(req.Domain, req.LaunchSecurity)}}})
	}
	// Recorded as confidential: the type may well be a TEE.
	b.recordOwn(ctx, resp.Devices, nil, true)
	b.mu.Lock()
	b.keepDecisionsLocked(resp.Devices)
	b.mu.Unlock()
	return resp
}

// keepDecisionsLocked keeps the last maxDecisions decisions for Status; b.mu is held.
func (b *GateBackend) keepDecisionsLocked(ds []DeviceDecision) {
	b.decisions = append(b.decisions, ds...)
	if n := len(b.decisions); n > maxDecisions {
		b.decisions = slices.Clone(b.decisions[n-maxDecisions:])
	}
}
