package daemon

import (
	"context"
	"time"

	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/pci"
)

// API paths (version 1).
const (
	PathCheck      = "/v1/check"
	PathBind       = "/v1/bind"
	PathRelease    = "/v1/release"
	PathStart      = "/v1/domain/start"
	PathTDISPLock  = "/v1/tdisp/lock"
	PathTDISPStart = "/v1/tdisp/start"
	PathTDISPStop  = "/v1/tdisp/stop"
	PathTDISPState = "/v1/tdisp/state"
	PathStatus     = "/v1/status"
)

// DefaultSocket is where the daemon listens unless --daemon-socket says otherwise.
const DefaultSocket = "/run/vfio-gate/daemon.sock"

// The libvirt start phases a check belongs to (CheckRequest.Phase); the
// rules of each are package phase's.
const (
	// PhasePrepare is libvirt's "prepare begin": a managed='yes' hostdev is
	// still on its host driver. The default.
	PhasePrepare = phase.Prepare
	// PhaseStart is libvirt's "start begin": libvirt has moved managed='yes'
	// hostdevs to vfio-pci; a non-zero hook exit still aborts the start.
	PhaseStart = phase.Start
)

// DecisionDeferred is the decision for a function whose check waits for
// PhaseStart: at prepare it is a managed='yes' hostdev on its host driver
// (whose DOE mailbox vfio-gate never drives). It is neither an allow nor a
// deny, and it is not recorded in the TPM.
const DecisionDeferred = "deferred"

// CodeDeferred is the reason code that comes with DecisionDeferred.
const CodeDeferred = "deferred"

// CheckRequest asks for a decision on functions, optionally for a domain.
type CheckRequest struct {
	Domain       string `json:"domain,omitempty"`
	Confidential bool   `json:"confidential"`
	// LaunchSecurity is the domain's <launchSecurity type=...> ("" none).
	// A type of policy.BuiltinConfidentialTypes or of the policy's
	// libvirt.confidential_types makes the check confidential; any other
	// is refused (launch-security-unknown): vfio-gate cannot tell whether
	// it is a TEE.
	LaunchSecurity string    `json:"launch_security,omitempty"`
	BDFs           []pci.BDF `json:"bdfs"`
	// Lock asks the daemon, in a confidential check, to lock the TDI of
	// every function whose policy rule has tdisp.require_lock, inside the
	// session it attests the function in, before deciding: kept locked for
	// Domain when allowed, stopped again when denied or when Domain is ""
	// (a probe: preflight). Without Lock no TDI is locked and such a rule
	// denies tdisp-not-locked. The libvirt hook sets it for confidential
	// domains.
	Lock bool `json:"lock,omitempty"`
	// Phase is PhasePrepare ("" means prepare) or PhaseStart. Check only;
	// bind takes no phase.
	Phase string `json:"phase,omitempty"`
	// Managed lists the functions of BDFs that the domain XML declares
	// managed='yes' (libvirt moves them to vfio-pci between prepare and
	// start). At prepare such a function found on a host driver is
	// deferred to start; every other function is checked at once.
	Managed []pci.BDF `json:"managed,omitempty"`
}

// Reason is one deny reason.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DeviceDecision is the decision for one function.
type DeviceDecision struct {
	BDF            pci.BDF     `json:"bdf"`
	VendorID       jsonhex.U16 `json:"vendor_id,omitempty"`
	DeviceID       jsonhex.U16 `json:"device_id,omitempty"`
	Decision       string      `json:"decision"` // allow | deny | deferred
	Reasons        []Reason    `json:"reasons"`
	Rule           string      `json:"rule,omitempty"`
	EvidenceDigest string      `json:"evidence_digest,omitempty"`
	TDIState       string      `json:"tdi_state,omitempty"`
}

// CheckResponse is the answer to check and bind.
type CheckResponse struct {
	// Decision is allow when every device is allowed, deny when one is
	// denied, else deferred (some deferred to PhaseStart, the rest allowed).
	Decision string           `json:"decision"`
	Devices  []DeviceDecision `json:"devices"`
}

// DomainRequest names a domain and (optionally) its functions.
type DomainRequest struct {
	Domain string    `json:"domain"`
	BDFs   []pci.BDF `json:"bdfs,omitempty"`
}

// TDIRequest addresses one TDI.
type TDIRequest struct {
	BDF    pci.BDF `json:"bdf"`
	Domain string  `json:"domain,omitempty"`
}

// TDIStatus is what the daemon knows about one TDI it holds.
type TDIStatus struct {
	BDF       pci.BDF   `json:"bdf"`
	Domain    string    `json:"domain,omitempty"`
	State     string    `json:"state"`
	SessionID uint32    `json:"session_id,omitempty"`
	Since     time.Time `json:"since"`
}

// Status is the daemon's whole state, for `vfio-gate status`.
type Status struct {
	Started   time.Time           `json:"started"`
	Policy    string              `json:"policy"`
	Domains   map[string][]string `json:"domains"` // domain -> BDFs it holds
	Devices   []DeviceStatus      `json:"devices"`
	TDIs      []TDIStatus         `json:"tdis"`
	Sessions  []SessionStatus     `json:"sessions"`
	Decisions []DeviceDecision    `json:"last_decisions"`
	Released  []ReleaseRecord     `json:"released"`
	Reports   []Report            `json:"reports"`
	// TDISP says whether this daemon can own TDISP sessions ("available" or
	// why not).
	TDISP string `json:"tdisp"`
	// TPM names the TPM the daemon records into; a throwaway simulator says so.
	TPM string `json:"tpm,omitempty"`
	// Ready is false while the daemon recovers what an earlier run left
	// (requests wait for it); Phase says what it is doing.
	Ready bool   `json:"ready"`
	Phase string `json:"phase,omitempty"`
}

// DeviceStatus is one function a domain holds.
type DeviceStatus struct {
	BDF      pci.BDF `json:"bdf"`
	Domain   string  `json:"domain"`
	Decision string  `json:"decision"` // allow, or deferred (reserved until start begin)
	Rule     string  `json:"rule,omitempty"`
	// Bound: the daemon bound it to vfio-pci (bind); false when libvirt
	// (managed='yes') or the operator did.
	Bound          bool      `json:"bound"`
	OriginalDriver string    `json:"original_driver,omitempty"`
	Driver         string    `json:"driver,omitempty"` // bound now, read at status time
	Since          time.Time `json:"since"`
}

// SessionStatus is one SPDM session the daemon holds.
type SessionStatus struct {
	BDF        pci.BDF   `json:"bdf"`
	SessionID  uint32    `json:"session_id"`
	Heartbeats int       `json:"heartbeats"`
	KeyUpdates int       `json:"key_updates"`
	Since      time.Time `json:"since,omitzero"`
}

// ReleaseRecord says what one release did.
type ReleaseRecord struct {
	Domain string    `json:"domain"`
	BDFs   []pci.BDF `json:"bdfs"`
	// Deferred are functions deferred at prepare and never checked (the
	// start was aborted before start begin, or at it): forgotten, no event.
	Deferred []pci.BDF `json:"deferred,omitempty"`
	Recorded bool      `json:"recorded"` // the release events are in the TPM log
	Errors   []string  `json:"errors,omitempty"`
	Time     time.Time `json:"time"`
}

// Report is something the daemon noticed and could not prevent (a hot-plugged
// hostdev without a decision, a TDI that left its state, a failed release).
type Report struct {
	Kind    string    `json:"kind"` // hotplug, hotplug-detached, hotplug-detach-pending, tdisp-exit, tdisp-session-lost, tdisp-recovered, release-failed, ...
	Domain  string    `json:"domain,omitempty"`
	BDF     string    `json:"bdf,omitempty"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Backend is what the daemon serves: the gate plus TDISP session ownership.
// Every method must be safe for concurrent use.
type Backend interface {
	Check(ctx context.Context, req CheckRequest) (*CheckResponse, error)
	Bind(ctx context.Context, req CheckRequest) (*CheckResponse, error)
	Release(ctx context.Context, req DomainRequest) error
	StartDomain(ctx context.Context, req DomainRequest) error
	TDISPLock(ctx context.Context, req TDIRequest) (*TDIStatus, error)
	TDISPStart(ctx context.Context, req TDIRequest) (*TDIStatus, error)
	TDISPStop(ctx context.Context, req TDIRequest) (*TDIStatus, error)
	TDISPState(ctx context.Context, req TDIRequest) (*TDIStatus, error)
	Status(ctx context.Context) (*Status, error)
}

// APIError is the JSON body of every non-2xx answer.
type APIError struct {
	Code    string `json:"code"` // stable: bad-request, forbidden, unavailable, internal, ...
	Message string `json:"message"`
	Status  int    `json:"-"`
}

func (e *APIError) Error() string { return "vfio-gate daemon: " + e.Code + ": " + e.Message }
