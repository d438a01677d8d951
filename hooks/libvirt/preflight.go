package libvirt

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// A preflight (`vfio-gate libvirt preflight`) checks a defined domain's
// host functions as the hook's prepare step would, without starting it:
// through the daemon when it runs (PreflightDaemon), else with a gate in
// the caller's process (PreflightGate). Nothing is bound, locked or held
// for the domain. A managed='yes' function on a host driver is deferred to
// start begin (phase.Decide), never counted as a deny.

// Managed returns the domain's managed='yes' functions, each once, in
// declaration order.
func (d *Domain) Managed() []pci.BDF {
	var out []pci.BDF
	for _, h := range d.PCI {
		if h.Managed && !slices.Contains(out, h.BDF) {
			out = append(out, h.BDF)
		}
	}
	return out
}

// Checker is the daemon's check endpoint: *daemon.Client.
type Checker interface {
	Check(ctx context.Context, req daemon.CheckRequest) (*daemon.CheckResponse, error)
}

// PreflightDaemon asks the daemon for the prepare-phase check of dom's
// functions (conf: as a confidential domain; no domain name, so a TDI lock
// is a probe, stopped again). It returns the checked decisions and the
// deferred functions; daemon.ErrNotRunning when no daemon answers.
func PreflightDaemon(ctx context.Context, c Checker, dom *Domain, conf bool) ([]gate.Decision, []phase.Deferred, error) {
	r, err := c.Check(ctx, daemon.CheckRequest{Confidential: conf, LaunchSecurity: dom.LaunchSecurity, BDFs: dom.BDFs(),
		Phase: daemon.PhasePrepare, Managed: dom.Managed(), Lock: conf})
	if err != nil {
		return nil, nil, err
	}
	var deferred []phase.Deferred
	checked := &daemon.CheckResponse{Decision: r.Decision}
	for _, d := range r.Devices {
		if d.Decision != daemon.DecisionDeferred {
			checked.Devices = append(checked.Devices, d)
			continue
		}
		msg := "checked at start begin"
		if len(d.Reasons) > 0 {
			msg = d.Reasons[0].Message
		}
		deferred = append(deferred, phase.Deferred{BDF: d.BDF, Message: msg})
	}
	return decisionsOf(checked), deferred, nil
}

// decisionsOf turns the daemon's answer into gate decisions (the CLI's
// output and exit code). A tpm reason means the decision was not recorded
// (its error matches tpm.ErrTPM); a bind reason is a bind error.
func decisionsOf(r *daemon.CheckResponse) []gate.Decision {
	out := make([]gate.Decision, 0, len(r.Devices))
	for _, d := range r.Devices {
		gd := gate.Decision{BDF: d.BDF, Identity: attest.Identity{BDF: d.BDF.String(), VendorID: uint16(d.VendorID), DeviceID: uint16(d.DeviceID)}, Recorded: true,
			Verdict: policy.Verdict{Decision: d.Decision, Allow: d.Decision == policy.DecisionAllow, Rule: d.Rule, Mode: policy.ModeEnforce}}
		gd.EvidenceDigest, _ = hex.DecodeString(d.EvidenceDigest)
		for _, rs := range d.Reasons {
			gd.Verdict.Reasons = append(gd.Verdict.Reasons, policy.Reason{Code: policy.Code(rs.Code), Message: rs.Message})
			switch rs.Code {
			case "tpm":
				gd.Recorded, gd.Err = false, fmt.Errorf("%w: %s", tpm.ErrTPM, rs.Message)
			case "bind":
				gd.Err = errors.New(rs.Message)
			}
		}
		out = append(out, gd)
	}
	return out
}

// LaunchSecurityError is a preflight of a domain whose <launchSecurity
// type=...> the policy does not classify: the daemon would refuse its
// functions (daemon.CodeLaunchSecurityUnknown).
type LaunchSecurityError struct{ Domain, Type string }

func (e *LaunchSecurityError) Error() string {
	return fmt.Sprintf("domain %s has <launchSecurity type='%s'>, which vfio-gate does not know (built in: %s): "+
		"the daemon refuses its functions (%s); if it is a confidential VM type, add it to the policy's libvirt.confidential_types",
		e.Domain, e.Type, strings.Join(policy.BuiltinConfidentialTypes, ", "), daemon.CodeLaunchSecurityUnknown)
}

// PreflightGate is PreflightDaemon with the gate h in this process, for the
// domain name: confidential also when the policy classifies its
// launchSecurity so (an unknown type is a *LaunchSecurityError); a
// managed='yes' function on a host driver is deferred. An error of the
// gate's check (locks) is returned as is.
func PreflightGate(ctx context.Context, h *gate.Host, name string, dom *Domain, conf bool) ([]gate.Decision, []phase.Deferred, error) {
	if lsConf, known := h.Policy.Libvirt.Confidential(dom.LaunchSecurity); !known {
		return nil, nil, &LaunchSecurityError{Domain: name, Type: dom.LaunchSecurity}
	} else if lsConf {
		conf = true
	}
	managed := dom.Managed()
	var deferred []phase.Deferred
	var now []pci.BDF
	for _, b := range dom.BDFs() {
		fn, err := h.System.Function(b)
		if err == nil && phase.Decide(phase.Prepare, false, true, phase.Function{Driver: fn.Driver, Managed: slices.Contains(managed, b)}) == phase.Defer {
			deferred = append(deferred, phase.Deferred{BDF: b, Message: phase.DeferredMessage(fn.Driver)})
			continue
		}
		now = append(now, b)
	}
	if len(now) == 0 {
		return nil, deferred, nil
	}
	ds, err := h.Gate.Check(ctx, gate.Request{BDFs: now, Confidential: conf, Domain: name})
	if err != nil {
		return nil, nil, err
	}
	return ds, deferred, nil
}

// DaemonError is the failure of a daemon that runs (anything but
// daemon.ErrNotRunning): Preflight does not check in this process then.
type DaemonError struct{ Err error }

func (e *DaemonError) Error() string { return e.Err.Error() }

// Unwrap returns the daemon's error.
func (e *DaemonError) Unwrap() error { return e.Err }

// Preflight is `vfio-gate libvirt preflight` of the defined domain name:
// dom's functions checked as the hook's prepare step would, by the daemon
// at socket through c when it runs (PreflightDaemon), else by the gate open
// gives in this process (PreflightGate; the gate is closed again). Progress
// lines go to w. mode is the deciding policy's (enforce for the daemon,
// whose answer is final). A failing daemon is a *DaemonError; open's and
// the gate's errors are returned as they come.
func Preflight(ctx context.Context, c Checker, socket string, open func() (*gate.Host, error), name string, dom *Domain, conf bool,
	w io.Writer) (ds []gate.Decision, deferred []phase.Deferred, mode policy.Mode, err error) {
	fmt.Fprintf(w, "vfio-gate: preflight of domain %s: %d host PCI function(s), confidential: %v\n", name, len(dom.BDFs()), conf)
	ds, deferred, err = PreflightDaemon(ctx, c, dom, conf)
	switch {
	case err == nil:
		fmt.Fprintf(w, "vfio-gate: decided by the daemon at %s\n", socket)
		return ds, deferred, policy.ModeEnforce, nil
	case !errors.Is(err, daemon.ErrNotRunning):
		return nil, nil, "", &DaemonError{Err: err}
	}
	fmt.Fprintf(w, "vfio-gate: daemon not running: checking in-process\n")
	h, err := open()
	if err != nil {
		return nil, nil, "", err
	}
	defer h.Close()
	if ds, deferred, err = PreflightGate(ctx, h, name, dom, conf); err != nil {
		return nil, nil, "", err
	}
	return ds, deferred, h.Policy.Mode, nil
}
