package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Action is what the hook does for one (operation, sub-operation) pair.
type Action int

// Actions. Every pair not in the table is ActionNone: exit 0 at once.
const (
	ActionNone       Action = iota
	ActionCheck             // prepare begin: gate every host PCI function (managed='yes' ones on a host driver are deferred)
	ActionCheckStart        // start begin: gate what prepare deferred, now on vfio-pci
	ActionStart             // started begin: start TDIs locked for this domain
	ActionRelease           // release end: release every function the domain had
)

// Phases of CheckRequest.Phase.
const (
	PhasePrepare = "prepare"
	PhaseStart   = "start"
)

// DecisionDeferred is a DeviceResult.Decision at prepare: the daemon checks
// the function at start begin, after libvirt moved it to vfio-pci.
const DecisionDeferred = "deferred"

// ActionFor returns the action for a libvirt qemu hook invocation.
func ActionFor(op, subop string) Action {
	switch {
	case op == "prepare" && subop == "begin":
		return ActionCheck
	case op == "start" && subop == "begin":
		return ActionCheckStart
	case op == "started" && subop == "begin":
		return ActionStart
	case op == "release" && subop == "end":
		return ActionRelease
	}
	return ActionNone
}

// CheckRequest asks the daemon to gate a domain's host PCI functions.
type CheckRequest struct {
	Domain       string `json:"domain"`
	UUID         string `json:"uuid,omitempty"`
	Confidential bool   `json:"confidential"`
	// LaunchSecurity is the domain's <launchSecurity type=...> ("" none):
	// the daemon classifies a type Confidential does not know against its
	// policy (libvirt.confidential_types), and refuses one it cannot.
	LaunchSecurity string    `json:"launch_security,omitempty"`
	Devices        []HostPCI `json:"devices"`
	// Phase is PhasePrepare or PhaseStart.
	Phase string `json:"phase"`
}

// Reason is one deny reason: a stable code and a sentence saying what to do.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DeviceResult is the daemon's decision for one function.
type DeviceResult struct {
	BDF      pci.BDF  `json:"bdf"`
	Decision string   `json:"decision"` // "allow", "deny" or (at prepare) "deferred"
	Reasons  []Reason `json:"reasons"`
	// TDIState is the state of the TDI the daemon holds for the domain
	// (CONFIG_LOCKED after a locking check), "" when it holds none.
	TDIState string `json:"tdi_state,omitempty"`
}

// CheckResult is the daemon's answer for a domain.
type CheckResult struct {
	// Allow: the phase may pass (at prepare: every function allowed or
	// deferred; at start: every function allowed).
	Allow   bool           `json:"allow"`
	Devices []DeviceResult `json:"devices"`
}

// Client is what the hook needs from the vfio-gate daemon.
type Client interface {
	Check(ctx context.Context, req CheckRequest) (*CheckResult, error)
	Start(ctx context.Context, domain string, bdfs []pci.BDF) error
	Release(ctx context.Context, domain string, bdfs []pci.BDF) error
}

// ErrDaemonDown is what a Client returns when the daemon socket does not answer.
var ErrDaemonDown = errors.New("vfio-gate daemon is not running (systemctl start vfio-gate)")

// Hook runs one hook invocation.
type Hook struct {
	Client Client
	// Budget bounds the whole invocation (libvirt waits for the hook; keep it
	// well under its patience). Zero means DefaultBudget.
	Budget time.Duration
	// ConfidentialTypes overrides the launchSecurity types that make a
	// domain confidential (nil: sev, sev-snp, tdx, s390-pv).
	ConfidentialTypes []string
}

// DefaultBudget is the default time budget of one hook invocation.
const DefaultBudget = 60 * time.Second

// Run handles "DOMNAME OPERATION SUBOP EXTRA" with the domain XML on stdin and
// returns the exit status libvirt acts on; messages go to stderr, which libvirt
// shows the user ("Hook script execution failed: ... <stderr>").
func (h *Hook) Run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) != 4 {
		// libvirt always passes four arguments; anything else is a caller that
		// took a flag-like domain name apart. Deny: the operation we would read
		// is not the one libvirt is running.
		fmt.Fprintf(stderr, "vfio-gate: hook called with %d arguments, want DOMNAME OPERATION SUBOP EXTRA: denying\n", len(args))
		return 1
	}
	name, act := args[0], ActionFor(args[1], args[2])
	if act == ActionNone {
		return 0
	}
	budget := h.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	dom, perr := ParseDomain(stdin)
	switch act {
	case ActionCheck, ActionCheckStart:
		if perr != nil {
			fmt.Fprintf(stderr, "vfio-gate: domain %s: %v: denying\n", name, perr)
			return 1
		}
		phase := PhasePrepare
		if act == ActionCheckStart {
			phase = PhaseStart
		}
		return h.check(ctx, name, dom, phase, stderr)
	case ActionStart:
		if perr != nil {
			fmt.Fprintf(stderr, "vfio-gate: domain %s: %v: cannot start TDIs\n", name, perr)
			return 1
		}
		if len(dom.PCI) == 0 {
			return 0
		}
		if err := h.Client.Start(ctx, name, dom.BDFs()); err != nil {
			fmt.Fprintf(stderr, "vfio-gate: domain %s: starting TEE device interfaces failed: %v\n", name, explain(ctx, err, budget))
			return 1
		}
		return 0
	case ActionRelease:
		var bdfs []pci.BDF
		if perr == nil {
			bdfs = dom.BDFs()
		}
		// Release everything the daemon holds for this domain, even if the XML
		// is unreadable (the daemon knows what it gave the domain). libvirt
		// ignores the status of release; we still say what went wrong.
		if err := h.Client.Release(ctx, name, bdfs); err != nil {
			fmt.Fprintf(stderr, "vfio-gate: domain %s: release: %v\n", name, explain(ctx, err, budget))
		}
		return 0
	}
	return 0
}

// check asks the daemon for the phase's decisions. At prepare a function
// may be deferred (checked at start begin); at start every function must
// be allowed.
func (h *Hook) check(ctx context.Context, name string, dom *Domain, phase string, stderr io.Writer) int {
	if len(dom.PCI) == 0 {
		return 0 // nothing of ours to gate
	}
	res, err := h.Client.Check(ctx, CheckRequest{
		Domain: name, UUID: dom.UUID, Confidential: dom.Confidential(h.ConfidentialTypes), LaunchSecurity: dom.LaunchSecurity, Devices: dom.PCI, Phase: phase,
	})
	if err != nil {
		fmt.Fprintf(stderr, "vfio-gate: domain %s: %v: denying\n", name, explain(ctx, err, h.Budget))
		return 1
	}
	if res.Allow && allPass(res, dom, phase) {
		return 0
	}
	var lines []string
	for _, d := range res.Devices {
		if passes(d.Decision, phase) {
			continue
		}
		if len(d.Reasons) == 0 {
			lines = append(lines, fmt.Sprintf("vfio-gate: DENY %s: denied without a reason (report this)", d.BDF))
		}
		for _, r := range d.Reasons {
			lines = append(lines, fmt.Sprintf("vfio-gate: DENY %s %s: %s", d.BDF, r.Code, r.Message))
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "vfio-gate: DENY: the daemon's answer did not cover every host PCI function")
	}
	fmt.Fprintln(stderr, strings.Join(lines, "\n"))
	return 1
}

// passes reports whether a device decision lets the phase pass.
func passes(decision, phase string) bool {
	return decision == "allow" || (phase == PhasePrepare && decision == DecisionDeferred)
}

// allPass checks that the daemon's answer lets every function the domain
// lists pass the phase: an answer that leaves one out is a deny.
func allPass(res *CheckResult, dom *Domain, phase string) bool {
	ok := map[pci.BDF]bool{}
	for _, d := range res.Devices {
		if passes(d.Decision, phase) {
			ok[d.BDF] = true
		} else {
			return false
		}
	}
	for _, h := range dom.PCI {
		if !ok[h.BDF] {
			return false
		}
	}
	return true
}

func explain(ctx context.Context, err error, budget time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		if budget <= 0 {
			budget = DefaultBudget
		}
		return fmt.Errorf("over the hook's time budget of %v (timeout): %w", budget, err)
	}
	return err
}
