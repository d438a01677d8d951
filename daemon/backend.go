package daemon

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

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
	// endpoints refuse with tdisp-unavailable. The owner runs its own
	// journal recovery (Broker.Recover) before it is handed over.
	TDIs TDIOwner
	// Reports is where what the daemon notices goes (Status.Reports); nil:
	// a list of the backend's own. Run shares one with the TDISP broker.
	Reports *Reports
	Logger  *slog.Logger
	Now     func() time.Time
}

// GateBackend implements Backend over one gate.Gate: it decides per
// request (check.go), remembers which domain holds which functions
// (persist.go, persisted in StateDir), releases them when the domain goes
// away (release.go), and drives the TDISP session owner (tdi.go).
type GateBackend struct {
	o       BackendOptions
	log     *slog.Logger
	now     func() time.Time
	started time.Time
	reports *Reports
	domains domainLocks

	// mu guards the fields below.
	mu sync.Mutex
	st state
	// decisions are not persisted: they are for the operator.
	decisions []DeviceDecision
	// tdis are the TDIs the TDISP journal in StateDir lists (left by an
	// earlier session owner): possibly locked, not owned by this daemon.
	tdis []TDIStatus
	// lastState is the last TDISP state PollTDIs saw per held TDI.
	lastState map[pci.BDF]string
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
	b := &GateBackend{o: o, log: o.Logger, now: o.Now, reports: o.Reports, st: state{Version: stateVersion, Domains: map[string]*domainState{}}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.reports == nil {
		b.reports = NewReports(b.log, b.now)
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

// Status is what the daemon holds.
func (b *GateBackend) Status(ctx context.Context) (*Status, error) {
	reports := b.reports.List()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &Status{Started: b.started, Policy: b.o.Gate.Policy().Path, Domains: map[string][]string{},
		Devices: []DeviceStatus{}, TDIs: append([]TDIStatus{}, b.tdis...), Sessions: []SessionStatus{},
		Decisions: slices.Clone(b.decisions), Released: slices.Clone(b.st.Released), Reports: reports,
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
			st.Devices = append(st.Devices, DeviceStatus{BDF: h.BDF, Domain: name, Decision: policy.DecisionAllow, Rule: h.Rule, Bound: h.Bound,
				OriginalDriver: h.OriginalDriver, Driver: b.driver(h.BDF), Since: h.Since})
		}
		for _, k := range slices.Sorted(maps.Keys(dom.Deferred)) {
			dd := dom.Deferred[k]
			st.Devices = append(st.Devices, DeviceStatus{BDF: dd.BDF, Domain: name, Decision: DecisionDeferred, OriginalDriver: dd.Driver,
				Driver: b.driver(dd.BDF), Since: dd.Since})
		}
		st.Domains[name] = list
	}
	if st.Decisions == nil {
		st.Decisions = []DeviceDecision{}
	}
	if st.Released == nil {
		st.Released = []ReleaseRecord{}
	}
	return st, nil
}

// driver is f's current driver ("" without System or when unreadable).
func (b *GateBackend) driver(f pci.BDF) string {
	if b.o.System == nil {
		return ""
	}
	if fn, err := b.o.System.Function(f); err == nil {
		return fn.Driver
	}
	return ""
}

// Report records something the daemon noticed (shown by Status) and logs it
// at warn level.
func (b *GateBackend) Report(ctx context.Context, r Report) { b.reports.Add(ctx, r) }

var _ Backend = (*GateBackend)(nil)
