package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// TDISPUnavailable is the explanation the TDISP endpoints give when the
// backend has no session owner.
const TDISPUnavailable = "this backend has no TDISP session owner (BackendOptions.TDIs is nil): " +
	"TDISP lock/start/stop/state are refused, and a policy rule with tdisp.require_lock denies the device at check"

// TDIOwner is the TDISP session owner the daemon drives: *tdisp.Broker.
type TDIOwner interface {
	Lock(ctx context.Context, bdf pci.BDF, owner string, p tdisp.LockParams) (*tdisp.InterfaceReport, []byte, error)
	// Adopt locks the TDI inside the session the gate attested the
	// function in (gate.TDIKeeper): a confidential check locks the TDIs
	// its policy rules require locked.
	Adopt(ctx context.Context, bdf pci.BDF, owner string, s tdisp.OwnedSession, release func(), p tdisp.LockParams) (*tdisp.InterfaceReport, []byte, error)
	Start(ctx context.Context, bdf pci.BDF) error
	State(ctx context.Context, bdf pci.BDF) (tdisp.State, error)
	Stop(ctx context.Context, bdf pci.BDF) error
	Held() []tdisp.Held
}

// tdiKeeper adapts the session owner to gate.TDIKeeper, for a check that
// locks the TDIs its policy rules require locked: the gate hands over the
// session it attested the function in, and the owner locks the TDI in it.
type tdiKeeper struct{ o TDIOwner }

var _ gate.TDIKeeper = tdiKeeper{}

func (k tdiKeeper) Adopt(ctx context.Context, bdf pci.BDF, owner string, held *attest.Held, release func()) (string, []byte, error) {
	_, raw, err := k.o.Adopt(ctx, bdf, owner, held.Session, release, tdisp.LockParams{})
	if err != nil {
		return "", nil, err
	}
	return tdisp.StateConfigLocked.String(), raw, nil
}

func (k tdiKeeper) Stop(ctx context.Context, bdf pci.BDF) error { return k.o.Stop(ctx, bdf) }

// recoverJournal reads the TDISP journal (tdisp.Journal in StateDir): every
// entry is a TDI an earlier owner locked or started and did not stop. This
// daemon cannot re-establish a session to STOP it (no session owner), so it
// reports each one (status: tdis and reports) rather than forget it; a
// journal that does not read back is reported as such (every TDI may be
// locked).
func (b *GateBackend) recoverJournal() {
	if b.o.StateDir == "" {
		return
	}
	j, err := tdisp.OpenJournal(b.o.StateDir, b.now)
	if err != nil {
		b.reports.add(Report{Kind: "tdisp-journal", Message: "TDISP journal unusable: " + err.Error()})
		return
	}
	defer j.Close()
	es, err := j.Entries()
	if err != nil {
		b.reports.add(Report{Kind: "tdisp-journal", Message: "TDISP journal unreadable (treat every TDI as possibly locked): " + err.Error()})
		return
	}
	for _, e := range es {
		bdf, err := pci.ParseBDF(e.BDF)
		if err != nil {
			continue
		}
		b.tdis = append(b.tdis, TDIStatus{BDF: bdf, Domain: e.Owner, State: e.State.String(), SessionID: e.SessionID, Since: e.Updated})
		b.reports.add(Report{Kind: "tdisp-orphan", Domain: e.Owner, BDF: e.BDF,
			Message: fmt.Sprintf("TDI %s was left %s by owner %q (journal); this daemon cannot stop it without the TDISP session owner: its session is gone, so the device should have moved it to ERROR", e.BDF, e.State, e.Owner)})
		b.log.Warn("TDI left locked by an earlier owner", "bdf", e.BDF, "state", e.State.String(), "owner", e.Owner)
	}
}

// requiresLock reports whether the policy rule named rule requires a locked TDI.
func (b *GateBackend) requiresLock(rule string) bool {
	if rule == "" {
		return false
	}
	for _, r := range b.o.Gate.Policy().Rules {
		if r.Name == rule {
			return r.TDISP != nil && r.TDISP.RequireLock
		}
	}
	return false
}

// TDISPLock locks the TDI for req.Domain through the session owner (which
// keeps the session alive until stop). With a domain, the function must be
// held by it (an allow decision from this daemon).
func (b *GateBackend) TDISPLock(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if b.o.TDIs == nil {
		return nil, tdispUnavailable("lock")
	}
	if err := checkRequestStrings(req.Domain, "", false); err != nil {
		return nil, err
	}
	if req.Domain != "" && !slices.Contains(b.Held(req.Domain), req.BDF) {
		return nil, errorf(CodeNotChecked, "domain %s holds no allow decision for %s: check it first", req.Domain, req.BDF)
	}
	if _, _, err := b.o.TDIs.Lock(ctx, req.BDF, req.Domain, tdisp.LockParams{}); err != nil {
		return nil, tdispErr("lock", req.BDF, err)
	}
	return b.tdiStatus(req.BDF)
}

// TDISPStart moves a locked TDI to RUN.
func (b *GateBackend) TDISPStart(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if b.o.TDIs == nil {
		return nil, tdispUnavailable("start")
	}
	if err := b.o.TDIs.Start(ctx, req.BDF); err != nil {
		return nil, tdispErr("start", req.BDF, err)
	}
	return b.tdiStatus(req.BDF)
}

// TDISPStop stops a TDI (CONFIG_UNLOCKED) and ends its session.
func (b *GateBackend) TDISPStop(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if b.o.TDIs == nil {
		return nil, tdispUnavailable("stop")
	}
	if err := b.o.TDIs.Stop(ctx, req.BDF); err != nil {
		return nil, tdispErr("stop", req.BDF, err)
	}
	return &TDIStatus{BDF: req.BDF, Domain: req.Domain, State: tdisp.StateConfigUnlocked.String(), Since: b.now().UTC()}, nil
}

// TDISPState asks the device for a held TDI's state.
func (b *GateBackend) TDISPState(ctx context.Context, req TDIRequest) (*TDIStatus, error) {
	if b.o.TDIs == nil {
		return nil, tdispUnavailable("state")
	}
	st, err := b.o.TDIs.State(ctx, req.BDF)
	if err != nil {
		return nil, tdispErr("state", req.BDF, err)
	}
	out, err := b.tdiStatus(req.BDF)
	if err != nil {
		return nil, err
	}
	out.State = st.String()
	return out, nil
}

func (b *GateBackend) tdiStatus(bdf pci.BDF) (*TDIStatus, error) {
	for _, h := range b.o.TDIs.Held() {
		if h.BDF == bdf {
			return &TDIStatus{BDF: h.BDF, Domain: h.Owner, State: h.State.String(), SessionID: h.SessionID, Since: h.Since.UTC()}, nil
		}
	}
	return nil, errorf(CodeNotHeld, "TDI %s is not held by the daemon", bdf)
}

func tdispErr(op string, bdf pci.BDF, err error) *Error {
	switch {
	case errors.Is(err, tdisp.ErrNotHeld):
		return errorf(CodeNotHeld, "TDISP %s %s: %v", op, bdf, err)
	case errors.Is(err, tdisp.ErrAlreadyHeld):
		return errorf(CodeTDIHeld, "TDISP %s %s: %v", op, bdf, err)
	}
	return errorf(CodeTDISPFailed, "TDISP %s %s: %v", op, bdf, err)
}

// heldTDIs returns the TDIs the owner holds for a domain.
func (b *GateBackend) heldTDIs(domain string) []tdisp.Held {
	if b.o.TDIs == nil {
		return nil
	}
	var out []tdisp.Held
	for _, h := range b.o.TDIs.Held() {
		if h.Owner == domain {
			out = append(out, h)
		}
	}
	return out
}

// PollTDIs re-reads, from the device, the TDISP state of every TDI the
// owner holds and returns those that left CONFIG_LOCKED/RUN (or whose
// session died) since the last poll. Each is reported and, when the
// policy's libvirt.record_tdisp_exit is set, recorded in the TPM.
func (b *GateBackend) PollTDIs(ctx context.Context) ([]TDIStatus, error) {
	if b.o.TDIs == nil {
		return nil, nil
	}
	var left []TDIStatus
	var events []tpm.Event
	for _, h := range b.o.TDIs.Held() {
		var now string
		reason := ""
		if h.Err != nil {
			now, reason = tdisp.StateError.String(), "session lost: "+h.Err.Error()
		} else if st, err := b.o.TDIs.State(ctx, h.BDF); err != nil {
			now, reason = "unknown", "state query failed: "+err.Error()
		} else {
			now = st.String()
		}
		b.mu.Lock()
		if b.lastState == nil {
			b.lastState = map[pci.BDF]string{}
		}
		prev, seen := b.lastState[h.BDF]
		b.lastState[h.BDF] = now
		b.mu.Unlock()
		ok := now == tdisp.StateConfigLocked.String() || now == tdisp.StateRun.String()
		if ok || (seen && prev == now) {
			continue
		}
		from := prev
		if !seen {
			from = h.State.String()
		}
		t := TDIStatus{BDF: h.BDF, Domain: h.Owner, State: now, SessionID: h.SessionID, Since: b.now().UTC()}
		left = append(left, t)
		b.Report(ctx, Report{Kind: "tdisp-exit", Domain: h.Owner, BDF: h.BDF.String(),
			Message: fmt.Sprintf("TDI %s of domain %s left CONFIG_LOCKED/RUN: %s -> %s %s", h.BDF, h.Owner, from, now, reason)})
		if b.o.Gate.Policy().Libvirt.RecordTDISPExit {
			events = append(events, tpm.TDISPStateEvent(tpm.TDISPState{BDF: h.BDF.String(), From: from, To: now, Reason: strings.TrimSpace("left while held " + reason), Time: b.now()}))
		}
	}
	if len(events) > 0 {
		if _, err := b.o.Recorder.Record(ctx, events...); err != nil {
			return left, fmt.Errorf("daemon: recording TDISP state changes: %w", err)
		}
	}
	return left, nil
}
