package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// StateFileName is the daemon's state file under BackendOptions.StateDir.
const StateFileName = "daemon-state.json"

// stateVersion is the version of the state file format.
const stateVersion = 1

// Caps on what Status keeps.
const (
	maxDecisions = 64
	maxReleased  = 32
	maxReports   = 64
)

// TDISPUnavailable is the explanation the TDISP endpoints give when the
// backend has no session owner.
const TDISPUnavailable = "this backend has no TDISP session owner (BackendOptions.TDIs is nil): " +
	"TDISP lock/start/stop/state are refused, and a policy rule with tdisp.require_lock denies the device at check"

// ErrTDISPUnavailable matches the APIError the TDISP endpoints return.
var ErrTDISPUnavailable = errors.New("daemon: tdisp-unavailable")

func tdispUnavailable(op string) *APIError {
	return &APIError{Code: "tdisp-unavailable", Status: 501, Message: "TDISP " + op + ": " + TDISPUnavailable}
}

// BackendOptions configure NewBackend. Gate and Recorder are required.
type BackendOptions struct {
	Gate *gate.Gate
	// Recorder is the gate's recorder: release events of functions the
	// daemon did not bind itself (libvirt managed='yes') go there.
	Recorder *tpm.Recorder
	// System reads current drivers for Status and the original driver before
	// a bind; nil leaves those fields empty.
	System *pci.System
	// StateDir holds StateFileName; "" keeps the state in memory only.
	StateDir string
	// TDIs owns the TDISP sessions (*tdisp.Broker); nil: the TDISP
	// endpoints answer 501 tdisp-unavailable. The owner runs its own
	// journal recovery (Broker.Recover) before it is handed over.
	TDIs   TDIOwner
	Logger *slog.Logger
	Now    func() time.Time
}

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

// GateBackend implements Backend over one gate.Gate: it decides per
// request, remembers which domain holds which functions (persisted in
// StateDir), and releases them when the domain goes away.
type GateBackend struct {
	o       BackendOptions
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	// domMu holds one mutex per domain: Release never races the Check/Bind
	// it undoes, while different domains are decided in parallel.
	domMu   sync.Mutex
	domLock map[string]*sync.Mutex
	mu      sync.Mutex
	st      state
	// decisions and reports are not persisted: they are for the operator.
	decisions []DeviceDecision
	reports   []Report
	// tdis are the TDIs the TDISP journal in StateDir lists (left by an
	// earlier session owner): possibly locked, not owned by this daemon.
	tdis []TDIStatus
	// lastState is the last TDISP state PollTDIs saw per held TDI.
	lastState map[pci.BDF]string
}

// StateSchema names the shape of the daemon's state file (docs/json.md).
// Files written before it have no "schema" and numeric IDs; they still load.
const StateSchema = "vfio-gate/daemon-state/v1"

// state is what the state file holds.
type state struct {
	Schema   string                  `json:"schema"`
	Version  int                     `json:"version"`
	Domains  map[string]*domainState `json:"domains"`
	Released []ReleaseRecord         `json:"released"`
}

type domainState struct {
	Confidential bool                      `json:"confidential"`
	Devices      map[string]*heldDevice    `json:"devices"` // by BDF string; allowed functions only
	Checked      time.Time                 `json:"checked"`
	Started      time.Time                 `json:"started,omitzero"`
	Denied       map[string]DeviceDecision `json:"denied,omitempty"`
	// Deferred are managed='yes' functions found on a host driver at
	// prepare: reserved for this domain, checked at start begin.
	Deferred map[string]*deferredDevice `json:"deferred,omitempty"`
}

type deferredDevice struct {
	BDF    pci.BDF   `json:"bdf"`
	Driver string    `json:"driver"` // the host driver at prepare
	Since  time.Time `json:"since"`
}

type heldDevice struct {
	BDF            pci.BDF      `json:"bdf"`
	Rule           string       `json:"rule,omitempty"`
	VendorID       jsonhex.U16  `json:"vendor_id"`
	DeviceID       jsonhex.U16  `json:"device_id"`
	DSN            *jsonhex.U64 `json:"dsn,omitempty"`
	Bound          bool         `json:"bound"`
	OriginalDriver string       `json:"original_driver,omitempty"`
	EvidenceDigest string       `json:"evidence_digest,omitempty"`
	Since          time.Time    `json:"since"`
}

// NewBackend returns a Backend over o.Gate, loading the state file from
// o.StateDir when there is one. A state file that cannot be read is an
// error: the daemon must not forget what it holds.
func NewBackend(o BackendOptions) (*GateBackend, error) {
	if o.Gate == nil {
		return nil, errors.New("daemon: BackendOptions.Gate is nil")
	}
	if o.Recorder == nil {
		return nil, errors.New("daemon: BackendOptions.Recorder is nil (every release must be recorded)")
	}
	b := &GateBackend{o: o, log: o.Logger, now: o.Now, st: state{Version: stateVersion, Domains: map[string]*domainState{}}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.started = b.now()
	if err := b.load(); err != nil {
		return nil, err
	}
	if o.TDIs == nil {
		b.recoverJournal()
	}
	return b, nil
}

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
		b.reportLocked(Report{Kind: "tdisp-journal", Message: "TDISP journal unusable: " + err.Error()})
		return
	}
	defer j.Close()
	es, err := j.Entries()
	if err != nil {
		b.reportLocked(Report{Kind: "tdisp-journal", Message: "TDISP journal unreadable (treat every TDI as possibly locked): " + err.Error()})
		return
	}
	for _, e := range es {
		bdf, err := pci.ParseBDF(e.BDF)
		if err != nil {
			continue
		}
		b.tdis = append(b.tdis, TDIStatus{BDF: bdf, Domain: e.Owner, State: e.State.String(), SessionID: e.SessionID, Since: e.Updated})
		b.reportLocked(Report{Kind: "tdisp-orphan", Domain: e.Owner, BDF: e.BDF,
			Message: fmt.Sprintf("TDI %s was left %s by owner %q (journal); this daemon cannot stop it without the TDISP session owner: its session is gone, so the device should have moved it to ERROR", e.BDF, e.State, e.Owner)})
		b.log.Warn("TDI left locked by an earlier owner", "bdf", e.BDF, "state", e.State.String(), "owner", e.Owner)
	}
}

func (b *GateBackend) statePath() string { return filepath.Join(b.o.StateDir, StateFileName) }

func (b *GateBackend) load() error {
	if b.o.StateDir == "" {
		return nil
	}
	root, err := statedir.Open(b.o.StateDir)
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	defer root.Close()
	data, err := statedir.ReadFile(root, StateFileName, maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("daemon: state file %s is corrupt (move it away only after checking what is bound): %w", b.statePath(), err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("daemon: state file %s has version %d, want %d", b.statePath(), st.Version, stateVersion)
	}
	if st.Schema != "" && st.Schema != StateSchema { // "": written before the schema name
		return fmt.Errorf("daemon: state file %s is a %q document, want %q", b.statePath(), st.Schema, StateSchema)
	}
	if err := st.validate(); err != nil {
		return fmt.Errorf("daemon: state file %s is inconsistent: %v; the daemon does not start on it (it must not forget or give away "+
			"what it holds): check which functions are on vfio-pci (lspci -k) and which domains run (virsh list), then fix the file or move it away", b.statePath(), err)
	}
	if st.Domains == nil {
		st.Domains = map[string]*domainState{}
	}
	for _, d := range st.Domains {
		if d.Devices == nil {
			d.Devices = map[string]*heldDevice{}
		}
	}
	b.st = st
	b.log.Info("state loaded", "path", b.statePath(), "domains", len(st.Domains))
	return nil
}

// saveLocked writes the state atomically and durably (statedir.WriteFile); b.mu is held.
func (b *GateBackend) saveLocked() error {
	if b.o.StateDir == "" {
		return nil
	}
	b.st.Schema = StateSchema
	data, err := json.MarshalIndent(&b.st, "", "  ")
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	root, err := statedir.Open(b.o.StateDir)
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	defer root.Close()
	if err := statedir.WriteFile(root, StateFileName, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	return nil
}

func badRequest(format string, a ...any) *APIError {
	return &APIError{Code: "bad-request", Status: 400, Message: fmt.Sprintf(format, a...)}
}

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

func (b *GateBackend) decide(ctx context.Context, req CheckRequest, bind bool) (*CheckResponse, error) {
	if len(req.BDFs) == 0 {
		return nil, badRequest("no functions given (bdfs is empty)")
	}
	if err := checkRequestStrings(req.Domain, req.LaunchSecurity, false); err != nil {
		return nil, err
	}
	phase := req.Phase
	switch {
	case phase == "":
		phase = PhasePrepare
	case phase != PhasePrepare && phase != PhaseStart:
		return nil, badRequest("unknown phase %q (want %q or %q)", req.Phase, PhasePrepare, PhaseStart)
	case bind && phase != PhasePrepare:
		return nil, badRequest("bind takes no phase (it moves the functions to vfio-pci itself)")
	}
	for _, m := range req.Managed {
		if !slices.Contains(req.BDFs, m) {
			return nil, badRequest("managed lists %s, which bdfs does not", m)
		}
	}
	defer b.lockDomain(req.Domain)()
	if conf, known := b.o.Gate.Policy().Libvirt.Confidential(req.LaunchSecurity); !known {
		return b.refuseLaunchSecurity(ctx, req), nil
	} else if conf {
		req.Confidential = true
	}
	drivers := map[pci.BDF]string{}
	if b.o.System != nil {
		for _, f := range req.BDFs {
			if fn, err := b.o.System.Function(f); err == nil {
				drivers[f] = fn.Driver
			}
		}
	}
	// A function another domain holds is in use (maybe by a running guest):
	// never touch its mailbox; deny it, recorded like any decision.
	var free []pci.BDF
	var inUse []DeviceDecision
	tdiOwner := map[pci.BDF]string{}
	tdiStates := map[pci.BDF]string{}
	if b.o.TDIs != nil {
		for _, h := range b.o.TDIs.Held() {
			tdiOwner[h.BDF], tdiStates[h.BDF] = h.Owner, h.State.String()
		}
	}
	var fromSession, kept, deferred, ownDenies []DeviceDecision
	deferredDriver := map[pci.BDF]string{}
	for _, f := range req.BDFs {
		if owner, ok := tdiOwner[f]; ok {
			// The session owner holds the function's lock and mailbox for the
			// TDI's session: attesting again would wait for the lock. A TDI
			// locked for this very domain, which holds an allow decision for
			// it, keeps that decision (its live, authenticated session is the
			// evidence that it is the same device); anything else is in use.
			if h := b.heldDevice(req.Domain, f); h != nil && owner == req.Domain && req.Domain != "" {
				fromSession = append(fromSession, DeviceDecision{BDF: f, VendorID: h.VendorID, DeviceID: h.DeviceID,
					Decision: policy.DecisionAllow, Rule: h.Rule, EvidenceDigest: h.EvidenceDigest, Reasons: []Reason{},
					TDIState: tdiStates[f]})
				continue
			}
			inUse = append(inUse, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeInUse,
				Message: fmt.Sprintf("the TDI of %s is locked by the daemon for %q (vfio-gate status); stop it (tdisp stop) or release that domain first", f, owner)}}})
			continue
		}
		if owner := b.holder(f); owner != "" && owner != req.Domain {
			inUse = append(inUse, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeInUse,
				Message: fmt.Sprintf("%s is held by domain %s (vfio-gate status; or reserved for its start begin, deferred at its prepare); "+
					"it is not attested or passed to another domain until that domain is released", f, owner)}}})
			continue
		}
		drv, known := drivers[f]
		onHost := known && drv != "" && drv != pci.VFIODriver
		switch {
		case !bind && phase == PhasePrepare && onHost && slices.Contains(req.Managed, f):
			// libvirt moves it to vfio-pci before start begin; its mailbox
			// belongs to the host driver now. No decision yet.
			deferredDriver[f] = drv
			deferred = append(deferred, DeviceDecision{BDF: f, Decision: DecisionDeferred, Reasons: []Reason{{Code: CodeDeferred,
				Message: fmt.Sprintf("on host driver %s; libvirt moves it to vfio-pci before start: checked at start begin", drv)}}})
			continue
		case phase == PhaseStart && !onHost:
			// A TDI the rule requires locked that is no longer held (daemon
			// restart, lost session) is checked and locked again below.
			relock := req.Lock && req.Confidential && b.o.TDIs != nil
			if h := b.heldDevice(req.Domain, f); h != nil && req.Domain != "" && !(relock && b.requiresLock(h.Rule)) {
				// Allowed at prepare (on vfio-pci or unbound then): that decision stands.
				kept = append(kept, DeviceDecision{BDF: f, VendorID: h.VendorID, DeviceID: h.DeviceID,
					Decision: policy.DecisionAllow, Rule: h.Rule, EvidenceDigest: h.EvidenceDigest, Reasons: []Reason{}})
				continue
			}
		case phase == PhaseStart && onHost && b.wasDeferred(req.Domain, f):
			// libvirt should have moved it to vfio-pci: fail closed.
			ownDenies = append(ownDenies, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: string(policy.CodeMailboxOwned),
				Message: fmt.Sprintf("%s is still on its host driver %s at libvirt start begin, although libvirt moves a managed='yes' hostdev to vfio-pci before start: "+
					"vfio-gate never drives a mailbox a host driver owns, so it is refused (check what rebound it; or run `vfio-gate bind --domain %s %s` before starting)", f, drv, req.Domain, f)}}})
			continue
		}
		free = append(free, f)
	}
	var ds []gate.Decision
	var err error
	if len(free) > 0 {
		gr := gate.Request{BDFs: free, Confidential: req.Confidential, Domain: req.Domain}
		if b.o.TDIs != nil && req.Lock {
			gr.TDIs = b.o.TDIs // locks what tdisp.require_lock asks for, in the attested session
		}
		if bind {
			ds, err = b.o.Gate.Bind(ctx, gr)
		} else {
			ds, err = b.o.Gate.Check(ctx, gr)
		}
	}
	if err != nil {
		if errors.Is(err, gate.ErrNoFunctions) {
			return nil, badRequest("%v", err)
		}
		return nil, &APIError{Code: "unavailable", Status: 503, Message: err.Error()}
	}
	inUse = append(inUse, ownDenies...)
	if len(inUse)+len(fromSession) > 0 {
		b.recordOwn(ctx, inUse, fromSession, req.Confidential)
	}
	resp := &CheckResponse{Decision: policy.DecisionAllow, Devices: make([]DeviceDecision, 0, len(req.BDFs))}
	now := b.now().UTC()
	denied := map[string]DeviceDecision{}
	for _, dd := range inUse {
		resp.Decision = policy.DecisionDeny
		resp.Devices = append(resp.Devices, dd)
		if dd.Reasons[0].Code != CodeInUse {
			denied[dd.BDF.String()] = dd
		}
	}
	resp.Devices = append(resp.Devices, kept...)
	for _, dd := range fromSession {
		if dd.Decision != policy.DecisionAllow {
			resp.Decision = policy.DecisionDeny
		}
		resp.Devices = append(resp.Devices, dd)
	}
	held := map[string]*heldDevice{}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range ds {
		dd := toDeviceDecision(d, drivers[d.BDF], req.Domain, phase, slices.Contains(req.Managed, d.BDF))
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
			resp.Decision = policy.DecisionDeny
			denied[d.BDF.String()] = dd
		} else {
			held[d.BDF.String()] = &heldDevice{BDF: d.BDF, Rule: d.Verdict.Rule, VendorID: jsonhex.U16(d.Identity.VendorID),
				DeviceID: jsonhex.U16(d.Identity.DeviceID), DSN: (*jsonhex.U64)(d.Identity.DSN), Bound: d.Bound, OriginalDriver: drivers[d.BDF],
				EvidenceDigest: dd.EvidenceDigest, Since: now}
		}
		resp.Devices = append(resp.Devices, dd)
	}
	for _, dd := range deferred {
		if owner := b.holderLocked(dd.BDF); owner != "" && owner != req.Domain {
			dd = DeviceDecision{BDF: dd.BDF, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeInUse,
				Message: fmt.Sprintf("%s was given to domain %s while this one was being prepared", dd.BDF, owner)}}}
		}
		resp.Devices = append(resp.Devices, dd)
	}
	for _, dd := range resp.Devices {
		if dd.Decision == DecisionDeferred && resp.Decision == policy.DecisionAllow {
			resp.Decision = DecisionDeferred
		} else if dd.Decision != policy.DecisionAllow && dd.Decision != DecisionDeferred {
			resp.Decision = policy.DecisionDeny
		}
	}
	b.decisions = append(b.decisions, resp.Devices...)
	if n := len(b.decisions); n > maxDecisions {
		b.decisions = slices.Clone(b.decisions[n-maxDecisions:])
	}
	if req.Domain == "" {
		return resp, nil
	}
	dom := b.st.Domains[req.Domain]
	if dom == nil {
		dom = &domainState{Devices: map[string]*heldDevice{}}
		b.st.Domains[req.Domain] = dom
	}
	dom.Confidential, dom.Checked = req.Confidential, now
	for k, h := range held {
		if old := dom.Devices[k]; old != nil && old.Bound && !h.Bound {
			// Bound by an earlier bind for this domain: keep that record, Release must undo it.
			h.Bound, h.OriginalDriver = true, old.OriginalDriver
		}
		dom.Devices[k] = h
		delete(dom.Denied, k)
		delete(dom.Deferred, k)
	}
	for k, dd := range denied {
		if dom.Denied == nil {
			dom.Denied = map[string]DeviceDecision{}
		}
		dom.Denied[k] = dd
		delete(dom.Deferred, k)
	}
	for _, dd := range resp.Devices {
		if dd.Decision != DecisionDeferred {
			continue
		}
		k := dd.BDF.String()
		if dom.Deferred == nil {
			dom.Deferred = map[string]*deferredDevice{}
		}
		dom.Deferred[k] = &deferredDevice{BDF: dd.BDF, Driver: deferredDriver[dd.BDF], Since: now}
		delete(dom.Denied, k)
		if old := dom.Devices[k]; old != nil && !old.Bound {
			// An earlier allow was for the function on vfio-pci; it is back on
			// a host driver, so that decision no longer speaks for it.
			delete(dom.Devices, k)
		}
	}
	if err := b.saveLocked(); err != nil {
		// Without the record a release could miss a function: fail closed.
		return nil, &APIError{Code: "internal", Status: 500, Message: err.Error()}
	}
	return resp, nil
}

// CodeLaunchSecurityUnknown is the reason code of every function of a
// domain whose launchSecurity type the policy does not classify.
const CodeLaunchSecurityUnknown = "launch-security-unknown"

// refuseLaunchSecurity denies (and records) every function of req: its
// domain's launchSecurity type is neither built in nor listed by the
// policy, so whether it is confidential is unknown.
func (b *GateBackend) refuseLaunchSecurity(ctx context.Context, req CheckRequest) *CheckResponse {
	resp := &CheckResponse{Decision: policy.DecisionDeny, Devices: []DeviceDecision{}}
	for _, f := range req.BDFs {
		resp.Devices = append(resp.Devices, DeviceDecision{BDF: f, Decision: policy.DecisionDeny, Reasons: []Reason{{Code: CodeLaunchSecurityUnknown,
			Message: fmt.Sprintf("domain %s has <launchSecurity type='%s'>, which vfio-gate does not know (built in: %s): if it is a confidential "+
				"VM type, add it to the policy's libvirt.confidential_types and reload the daemon", req.Domain, req.LaunchSecurity,
				strings.Join(policy.BuiltinConfidentialTypes, ", "))}}})
	}
	// Recorded as confidential: the type may well be a TEE.
	b.recordOwn(ctx, resp.Devices, nil, true)
	b.mu.Lock()
	b.decisions = append(b.decisions, resp.Devices...)
	if n := len(b.decisions); n > maxDecisions {
		b.decisions = slices.Clone(b.decisions[n-maxDecisions:])
	}
	b.mu.Unlock()
	return resp
}

// wasDeferred reports whether f was deferred at prepare for domain.
func (b *GateBackend) wasDeferred(domain string, f pci.BDF) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	return domain != "" && dom != nil && dom.Deferred[f.String()] != nil
}

// heldDevice returns the record of f held by domain, or nil.
func (b *GateBackend) heldDevice(domain string, f pci.BDF) *heldDevice {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dom := b.st.Domains[domain]; dom != nil {
		if h := dom.Devices[f.String()]; h != nil {
			c := *h
			return &c
		}
	}
	return nil
}

// lockDomain takes the domain's operation lock ("" = none) and returns its unlock.
func (b *GateBackend) lockDomain(name string) func() {
	if name == "" {
		return func() {}
	}
	b.domMu.Lock()
	if b.domLock == nil {
		b.domLock = map[string]*sync.Mutex{}
	}
	m := b.domLock[name]
	if m == nil {
		m = &sync.Mutex{}
		b.domLock[name] = m
	}
	b.domMu.Unlock()
	m.Lock()
	return m.Unlock
}

// CodeInUse is the reason code of a function another domain holds.
const CodeInUse = "in-use"

// holder returns the domain holding f, or reserving it by a deferral ("" = none).
func (b *GateBackend) holder(f pci.BDF) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holderLocked(f)
}

func (b *GateBackend) holderLocked(f pci.BDF) string {
	for _, name := range slices.Sorted(maps.Keys(b.st.Domains)) {
		dom := b.st.Domains[name]
		if dom.Devices[f.String()] != nil || dom.Deferred[f.String()] != nil {
			return name
		}
	}
	return ""
}

// recordOwn records the decisions the daemon makes without the gate (in-use
// denies, a deferred function still on its host driver at start, allows kept
// from a live TDI session) in the TPM: every decision is
// recorded. A failure denies with the tpm reason.
func (b *GateBackend) recordOwn(ctx context.Context, denies, allows []DeviceDecision, confidential bool) {
	var events []tpm.Event
	mode := string(b.o.Gate.Policy().Mode)
	for _, dd := range denies {
		var codes []string
		for _, r := range dd.Reasons {
			codes = append(codes, r.Code)
		}
		events = append(events, tpm.VerdictEvent(tpm.Decision{BDF: dd.BDF.String(), Allow: false, Mode: mode,
			Reasons: codes, Confidential: confidential, Time: b.now()}))
	}
	for _, dd := range allows {
		dig, _ := hex.DecodeString(dd.EvidenceDigest)
		events = append(events, tpm.VerdictEvent(tpm.Decision{BDF: dd.BDF.String(), VendorID: uint16(dd.VendorID), DeviceID: uint16(dd.DeviceID),
			Rule: dd.Rule, Allow: true, Mode: mode, EvidenceDigest: dig, Confidential: confidential, Time: b.now()}))
	}
	recs, err := b.o.Recorder.Record(ctx, events...)
	if err == nil && len(recs) == len(events) {
		return
	}
	fail := Reason{Code: "tpm", Message: fmt.Sprintf("the decision could not be recorded in the TPM: %v", err)}
	for i := range denies {
		denies[i].Reasons = append(denies[i].Reasons, fail)
	}
	for i := range allows {
		allows[i].Decision = policy.DecisionDeny
		allows[i].Reasons = append(allows[i].Reasons, fail)
	}
}

// toDeviceDecision converts a gate decision for the API. A decision with an
// error (TPM, bind) is a deny. mailbox-owned under a host driver gets advice
// that fits the phase and whether libvirt manages the hostdev.
func toDeviceDecision(d gate.Decision, driver, domain, phase string, managed bool) DeviceDecision {
	dd := DeviceDecision{BDF: d.BDF, VendorID: jsonhex.U16(d.Identity.VendorID), DeviceID: jsonhex.U16(d.Identity.DeviceID), Decision: d.Verdict.Decision, Rule: d.Verdict.Rule,
		EvidenceDigest: hex.EncodeToString(d.EvidenceDigest), Reasons: []Reason{}}
	if dd.Decision == "" {
		dd.Decision = policy.DecisionDeny
	}
	for _, r := range d.Verdict.Reasons {
		msg := r.Message
		if r.Code == policy.CodeMailboxOwned && driver != "" && driver != pci.VFIODriver {
			target := d.BDF.String()
			if domain != "" {
				target = "--domain " + domain + " " + target
			}
			msg += mailboxOwnedAdvice(driver, target, domain, phase, managed)
		}
		dd.Reasons = append(dd.Reasons, Reason{Code: string(r.Code), Message: msg})
	}
	if d.Err != nil {
		dd.Decision = policy.DecisionDeny
		code := "bind"
		if errors.Is(d.Err, tpm.ErrTPM) || !d.Recorded {
			code = "tpm"
		}
		if !slices.ContainsFunc(dd.Reasons, func(r Reason) bool { return r.Code == code }) {
			dd.Reasons = append(dd.Reasons, Reason{Code: code, Message: d.Err.Error()})
		}
	}
	if d.Verdict.WouldDeny {
		dd.Rule = strings.TrimSpace(dd.Rule + " (audit: would deny)")
	}
	if d.TDILocked {
		dd.TDIState = tdisp.StateConfigLocked.String()
	}
	return dd
}

// mailboxOwnedAdvice says what to do about a function denied mailbox-owned
// because it is on host driver driver.
func mailboxOwnedAdvice(driver, target, domain, phase string, managed bool) string {
	bind := fmt.Sprintf("`vfio-gate bind %s` (moves its IOMMU group to vfio-pci, attests it there, keeps it on vfio-pci on allow "+
		"and gives it back on deny; libvirt accepts a function already on vfio-pci)", target)
	switch {
	case phase == PhaseStart:
		return fmt.Sprintf(" (the function is on its host driver %s at libvirt start begin, and a check never moves it: "+
			"declare the hostdev managed='yes' so libvirt moves it to vfio-pci before start, or run %s first)", driver, bind)
	case domain != "" && !managed:
		return fmt.Sprintf(" (the function is on its host driver %s and the hostdev is not managed='yes', so libvirt will not move it "+
			"and a check never does: run %s first; or declare it managed='yes': then vfio-gate checks it at libvirt start begin, "+
			"after libvirt moved it to vfio-pci)", driver, bind)
	}
	return fmt.Sprintf(" (the function is on its host driver %s and a check never moves it: run %s first; "+
		"a libvirt managed='yes' hostdev on a host driver is checked at start begin instead, after libvirt moved it to vfio-pci)", driver, bind)
}

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
	defer b.lockDomain(req.Domain)()
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
			return &APIError{Code: "release-failed", Status: 500, Message: strings.Join(tdiErrs, "; ")}
		}
		return nil
	}
	var bound, other []*heldDevice
	for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
		h := dom.Devices[k]
		if h.Bound {
			bound = append(bound, h)
		} else {
			other = append(other, h)
		}
	}
	rec := ReleaseRecord{Domain: req.Domain, BDFs: []pci.BDF{}, Recorded: true, Time: b.now().UTC(), Errors: tdiErrs}
	failed := map[pci.BDF]bool{}
	if len(bound) > 0 {
		bdfs := make([]pci.BDF, len(bound))
		for i, h := range bound {
			bdfs[i] = h.BDF
		}
		rs, err := b.o.Gate.Release(ctx, bdfs, req.Domain)
		if rs == nil && err != nil {
			return &APIError{Code: "unavailable", Status: 503, Message: err.Error()}
		}
		for _, r := range rs {
			switch {
			case r.Err == nil:
				if !r.Recorded {
					rec.Recorded = false
				}
			case errors.Is(r.Err, gate.ErrNotBound):
				// Already released (by the CLI, or before a daemon restart): nothing to undo.
			default:
				failed[r.BDF] = true
				rec.Errors = append(rec.Errors, fmt.Sprintf("%s: %v", r.BDF, r.Err))
			}
		}
	}
	var events []tpm.Event
	for _, h := range other {
		events = append(events, tpm.ReleaseEvent(tpm.Release{BDF: h.BDF.String(), VendorID: h.VendorID, DeviceID: h.DeviceID,
			DSN: h.DSN, Domain: req.Domain, Reason: "domain released", Time: b.now()}))
	}
	if len(events) > 0 {
		recs, err := b.o.Recorder.Record(ctx, events...)
		if err != nil || len(recs) != len(events) {
			rec.Recorded = false
			rec.Errors = append(rec.Errors, fmt.Sprintf("release events not recorded in the TPM: %v", err))
			for _, h := range other {
				failed[h.BDF] = true
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range append(bound, other...) {
		if failed[h.BDF] {
			continue
		}
		rec.BDFs = append(rec.BDFs, h.BDF)
		delete(dom.Devices, h.BDF.String())
	}
	// Deferred functions were never decided nor moved by the daemon (libvirt
	// moves managed ones back itself): forget the reservation.
	for _, k := range slices.Sorted(maps.Keys(dom.Deferred)) {
		rec.Deferred = append(rec.Deferred, dom.Deferred[k].BDF)
	}
	dom.Deferred = nil
	if len(dom.Devices) == 0 {
		delete(b.st.Domains, req.Domain)
	}
	b.st.Released = append(b.st.Released, rec)
	if n := len(b.st.Released); n > maxReleased {
		b.st.Released = slices.Clone(b.st.Released[n-maxReleased:])
	}
	b.log.InfoContext(ctx, "domain released", "domain", req.Domain, "released", len(rec.BDFs), "errors", len(rec.Errors))
	serr := b.saveLocked()
	if len(rec.Errors) > 0 {
		b.reportLocked(Report{Kind: "release-failed", Domain: req.Domain, Message: strings.Join(rec.Errors, "; ")})
		return errors.Join(&APIError{Code: "release-failed", Status: 500, Message: strings.Join(rec.Errors, "; ")}, serr)
	}
	return serr
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
		return &APIError{Code: "not-checked", Status: 409,
			Message: fmt.Sprintf("domain %s was never checked by this daemon (prepare did not run through it)", req.Domain)}
	}
	for _, f := range req.BDFs {
		if dom.Devices[f.String()] == nil {
			return &APIError{Code: "not-checked", Status: 409,
				Message: fmt.Sprintf("domain %s: %s has no allow decision from this daemon", req.Domain, f)}
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
				return &APIError{Code: "tdi-not-held", Status: 409, Message: fmt.Sprintf("domain %s: the TDI of %s (rule %s requires it locked) "+
					"is no longer held locked by the daemon (daemon restarted, or its session died, since the check): restart the domain", req.Domain, h.BDF, h.Rule)}
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
		return nil, &APIError{Code: "not-checked", Status: 409,
			Message: fmt.Sprintf("domain %s holds no allow decision for %s: check it first", req.Domain, req.BDF)}
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
	return nil, &APIError{Code: "not-held", Status: 404, Message: fmt.Sprintf("TDI %s is not held by the daemon", bdf)}
}

func tdispErr(op string, bdf pci.BDF, err error) *APIError {
	switch {
	case errors.Is(err, tdisp.ErrNotHeld):
		return &APIError{Code: "not-held", Status: 404, Message: fmt.Sprintf("TDISP %s %s: %v", op, bdf, err)}
	case errors.Is(err, tdisp.ErrAlreadyHeld):
		return &APIError{Code: "tdi-held", Status: 409, Message: fmt.Sprintf("TDISP %s %s: %v", op, bdf, err)}
	}
	return &APIError{Code: "tdisp-failed", Status: 502, Message: fmt.Sprintf("TDISP %s %s: %v", op, bdf, err)}
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

// Status is what the daemon holds.
func (b *GateBackend) Status(ctx context.Context) (*Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &Status{Started: b.started, Policy: b.o.Gate.Policy().Path, Domains: map[string][]string{},
		Devices: []DeviceStatus{}, TDIs: append([]TDIStatus{}, b.tdis...), Sessions: []SessionStatus{},
		Decisions: slices.Clone(b.decisions), Released: slices.Clone(b.st.Released), Reports: slices.Clone(b.reports),
		TDISP: "unavailable: " + TDISPUnavailable}
	if b.o.TDIs != nil {
		st.TDISP = "available"
		for _, h := range b.o.TDIs.Held() {
			state := h.State.String()
			if h.Err != nil {
				state += " (session lost: " + h.Err.Error() + ")"
			}
			st.TDIs = append(st.TDIs, TDIStatus{BDF: h.BDF, Domain: h.Owner, State: state, SessionID: h.SessionID, Since: h.Since.UTC()})
			st.Sessions = append(st.Sessions, SessionStatus{BDF: h.BDF, SessionID: h.SessionID, Heartbeats: h.Heartbeats, KeyUpdates: h.KeyUpdates,
				Since: h.Since.UTC()})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(b.st.Domains)) {
		dom := b.st.Domains[name]
		list := []string{}
		for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
			h := dom.Devices[k]
			list = append(list, k)
			ds := DeviceStatus{BDF: h.BDF, Domain: name, Decision: policy.DecisionAllow, Rule: h.Rule, Bound: h.Bound,
				OriginalDriver: h.OriginalDriver, Since: h.Since}
			if b.o.System != nil {
				if fn, err := b.o.System.Function(h.BDF); err == nil {
					ds.Driver = fn.Driver
				}
			}
			st.Devices = append(st.Devices, ds)
		}
		for _, k := range slices.Sorted(maps.Keys(dom.Deferred)) {
			dd := dom.Deferred[k]
			ds := DeviceStatus{BDF: dd.BDF, Domain: name, Decision: DecisionDeferred, OriginalDriver: dd.Driver, Since: dd.Since}
			if b.o.System != nil {
				if fn, err := b.o.System.Function(dd.BDF); err == nil {
					ds.Driver = fn.Driver
				}
			}
			st.Devices = append(st.Devices, ds)
		}
		st.Domains[name] = list
	}
	if st.Decisions == nil {
		st.Decisions = []DeviceDecision{}
	}
	if st.Released == nil {
		st.Released = []ReleaseRecord{}
	}
	if st.Reports == nil {
		st.Reports = []Report{}
	}
	return st, nil
}

// Held returns the functions a domain holds (an allow decision from this
// daemon), in BDF order.
func (b *GateBackend) Held(domain string) []pci.BDF {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	if dom == nil {
		return nil
	}
	out := []pci.BDF{}
	for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
		out = append(out, dom.Devices[k].BDF)
	}
	return out
}

// DomainTimes returns when a domain the daemon holds was last checked and
// started (zero when StartDomain never ran); ok is false for an unknown domain.
func (b *GateBackend) DomainTimes(domain string) (checked, started time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	if dom == nil {
		return time.Time{}, time.Time{}, false
	}
	return dom.Checked, dom.Started, true
}

// Domains returns the names of the domains the daemon holds functions for.
func (b *GateBackend) Domains() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.st.Domains))
}

// Report records something the daemon noticed (shown by Status) and logs it
// at warn level.
func (b *GateBackend) Report(ctx context.Context, r Report) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reportLocked(r)
	b.log.WarnContext(ctx, r.Message, "kind", r.Kind, "domain", r.Domain, "bdf", r.BDF)
}

func (b *GateBackend) reportLocked(r Report) {
	if r.Time.IsZero() {
		r.Time = b.now().UTC()
	}
	b.reports = append(b.reports, r)
	if n := len(b.reports); n > maxReports {
		b.reports = slices.Clone(b.reports[n-maxReports:])
	}
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

var _ Backend = (*GateBackend)(nil)
