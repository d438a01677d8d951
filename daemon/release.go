package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// Release gives back everything req.Domain holds: TDISP stop (no TDI is
// ever locked without the session owner), unbind and restore the original
// driver for functions the daemon bound (gate.Release, which records the
// release event), and a TPM release event for the others (libvirt moves
// managed functions back itself). Functions deferred at prepare and never
// checked are only forgotten (no decision, no event, no driver change). Releasing an unknown domain, or one
// already released, does nothing and succeeds. Functions in req.BDFs that
// the domain does not hold are left alone (another domain may hold them).
func (b *GateBackend) Release(ctx context.Context, req DomainRequest) error {
	if req.Domain == "" {
		return badRequest("release needs a domain name")
	}
	if err := checkRequestStrings(req.Domain, "", true); err != nil {
		return err
	}
	defer b.domains.lock(req.Domain)()
	b.mu.Lock()
	dom := b.st.Domains[req.Domain]
	b.mu.Unlock()
	var tdiErrs []string
	for _, t := range b.heldTDIs(req.Domain) {
		if err := b.o.TDIs.Stop(ctx, t.BDF); err != nil && !errors.Is(err, tdisp.ErrNotHeld) {
			tdiErrs = append(tdiErrs, fmt.Sprintf("%s: TDISP stop: %v", t.BDF, err))
		}
	}
	if dom == nil {
		b.log.InfoContext(ctx, "release of a domain the daemon holds nothing for", "domain", req.Domain, "bdfs", len(req.BDFs))
		if len(tdiErrs) > 0 {
			return &Error{Code: CodeReleaseFailed, Message: strings.Join(tdiErrs, "; ")}
		}
		return nil
	}
	rs := &releaseState{b: b, domain: req.Domain, dom: dom, failed: map[pci.BDF]bool{},
		rec: ReleaseRecord{Domain: req.Domain, BDFs: []pci.BDF{}, Recorded: true, Time: b.now().UTC(), Errors: tdiErrs}}
	for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
		if h := dom.Devices[k]; h.Bound {
			rs.bound = append(rs.bound, h)
		} else {
			rs.other = append(rs.other, h)
		}
	}
	if err := rs.unbind(ctx); err != nil {
		return err
	}
	rs.recordOthers(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	serr := rs.forget(ctx)
	if len(rs.rec.Errors) > 0 {
		msg := strings.Join(rs.rec.Errors, "; ")
		b.reports.add(Report{Kind: "release-failed", Domain: req.Domain, Message: msg})
		return errors.Join(&Error{Code: CodeReleaseFailed, Message: msg}, serr)
	}
	return serr
}

// releaseState is one Release of a domain the daemon holds: unbind, then
// recordOthers, then forget.
type releaseState struct {
	b      *GateBackend
	domain string
	dom    *domainState
	// bound are the functions the daemon bound (bind); other the ones
	// libvirt or the operator moved.
	bound, other []*heldDevice
	rec          ReleaseRecord
	failed       map[pci.BDF]bool // not released: kept in the state
}

// unbind gives the bound functions back to their original drivers
// (gate.Release records the release events). An error: the gate could not
// run at all.
func (rs *releaseState) unbind(ctx context.Context) error {
	if len(rs.bound) == 0 {
		return nil
	}
	bdfs := make([]pci.BDF, len(rs.bound))
	for i, h := range rs.bound {
		bdfs[i] = h.BDF
	}
	results, err := rs.b.o.Gate.Release(ctx, bdfs, rs.domain)
	if results == nil && err != nil {
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	for _, r := range results {
		switch {
		case r.Err == nil:
			if !r.Recorded {
				rs.rec.Recorded = false
			}
		case errors.Is(r.Err, gate.ErrNotBound):
			// Already released (by the CLI, or before a daemon restart): nothing to undo.
		default:
			rs.failed[r.BDF] = true
			rs.rec.Errors = append(rs.rec.Errors, fmt.Sprintf("%s: %v", r.BDF, r.Err))
		}
	}
	return nil
}

// recordOthers records a release event for each function the daemon did not
// bind; when that fails they stay held (a later release records them).
func (rs *releaseState) recordOthers(ctx context.Context) {
	b := rs.b
	var events []tpm.Event
	for _, h := range rs.other {
		events = append(events, tpm.ReleaseEvent(tpm.Release{BDF: h.BDF.String(), VendorID: h.VendorID, DeviceID: h.DeviceID,
			DSN: h.DSN, Domain: rs.domain, Reason: "domain released", Time: b.now()}))
	}
	if len(events) == 0 {
		return
	}
	recs, err := b.o.Recorder.Record(ctx, events...)
	if err != nil || len(recs) != len(events) {
		rs.rec.Recorded = false
		rs.rec.Errors = append(rs.rec.Errors, fmt.Sprintf("release events not recorded in the TPM: %v", err))
		for _, h := range rs.other {
			rs.failed[h.BDF] = true
		}
	}
}

// forget drops the released functions and the deferrals from the state,
// keeps the release record and saves. b.mu is held.
func (rs *releaseState) forget(ctx context.Context) error {
	b, dom := rs.b, rs.dom
	for _, h := range append(rs.bound, rs.other...) {
		if rs.failed[h.BDF] {
			continue
		}
		rs.rec.BDFs = append(rs.rec.BDFs, h.BDF)
		delete(dom.Devices, h.BDF.String())
	}
	// Deferred functions were never decided nor moved by the daemon (libvirt
	// moves managed ones back itself): forget the reservation.
	for _, k := range slices.Sorted(maps.Keys(dom.Deferred)) {
		rs.rec.Deferred = append(rs.rec.Deferred, dom.Deferred[k].BDF)
	}
	dom.Deferred = nil
	if len(dom.Devices) == 0 {
		delete(b.st.Domains, rs.domain)
	}
	b.st.Released = append(b.st.Released, rs.rec)
	if n := len(b.st.Released); n > maxReleased {
		b.st.Released = slices.Clone(b.st.Released[n-maxReleased:])
	}
	b.log.InfoContext(ctx, "domain released", "domain", rs.domain, "released", len(rs.rec.BDFs), "errors", len(rs.rec.Errors))
	return b.saveLocked()
}

// StartDomain starts the TDIs locked for the domain (at its check, when the
// rule requires a locked TDI, or by TDISPLock) and records that the domain
// started. Without a session owner no TDI is ever locked: a domain whose
// functions' rule requires a locked TDI is then refused with
// tdisp-unavailable (fail closed). A domain the daemon never checked is
// refused with not-checked.
func (b *GateBackend) StartDomain(ctx context.Context, req DomainRequest) error {
	if req.Domain == "" {
		return badRequest("start needs a domain name")
	}
	if err := checkRequestStrings(req.Domain, "", true); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[req.Domain]
	if dom == nil {
		if len(req.BDFs) == 0 {
			return nil // no host PCI functions: nothing of ours
		}
		return errorf(CodeNotChecked, "domain %s was never checked by this daemon (prepare did not run through it)", req.Domain)
	}
	for _, f := range req.BDFs {
		if dom.Devices[f.String()] == nil {
			return errorf(CodeNotChecked, "domain %s: %s has no allow decision from this daemon", req.Domain, f)
		}
	}
	if b.o.TDIs == nil {
		for _, h := range dom.Devices {
			if b.requiresLock(h.Rule) {
				return tdispUnavailable("start (" + h.BDF.String() + ", rule " + h.Rule + ")")
			}
		}
	}
	held := b.heldTDIs(req.Domain)
	if dom.Confidential && b.o.TDIs != nil {
		// A function allowed on a locked TDI must still have it: a daemon
		// restart (Recover stops what the dead sessions held) or a lost
		// session between prepare and start leaves it unlocked.
		for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
			h := dom.Devices[k]
			if b.requiresLock(h.Rule) && !slices.ContainsFunc(held, func(t tdisp.Held) bool { return t.BDF == h.BDF && t.Err == nil }) {
				return errorf(CodeTDINotHeld, "domain %s: the TDI of %s (rule %s requires it locked) "+
					"is no longer held locked by the daemon (daemon restarted, or its session died, since the check): restart the domain", req.Domain, h.BDF, h.Rule)
			}
		}
	}
	for _, t := range held {
		if t.State != tdisp.StateConfigLocked {
			continue
		}
		if err := b.o.TDIs.Start(ctx, t.BDF); err != nil {
			return tdispErr("start", t.BDF, err)
		}
	}
	dom.Started = b.now().UTC()
	return b.saveLocked()
}
