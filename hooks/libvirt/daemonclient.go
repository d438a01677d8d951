package libvirt

import (
	"context"
	"errors"
	"slices"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/pci"
)

// DaemonAPI is what the hook uses of the daemon: *daemon.Client (over its
// unix socket, what the installed hook uses) or a daemon.Backend itself
// (in-process: the demo, tests).
type DaemonAPI interface {
	Check(ctx context.Context, req daemon.CheckRequest) (*daemon.CheckResponse, error)
	StartDomain(ctx context.Context, req daemon.DomainRequest) error
	Release(ctx context.Context, req daemon.DomainRequest) error
}

// DaemonClient adapts the daemon's API to the hook's Client.
type DaemonClient struct{ C DaemonAPI }

// Check asks the daemon to gate (and, per policy, lock) the domain's
// functions in the request's phase, saying which are managed='yes'.
func (d DaemonClient) Check(ctx context.Context, req CheckRequest) (*CheckResult, error) {
	var managed []pci.BDF
	for _, h := range req.Devices {
		if h.Managed && !slices.Contains(managed, h.BDF) {
			managed = append(managed, h.BDF)
		}
	}
	r, err := d.C.Check(ctx, daemon.CheckRequest{Domain: req.Domain, Confidential: req.Confidential, LaunchSecurity: req.LaunchSecurity,
		BDFs: bdfsOf(req.Devices), Lock: req.Confidential || req.LaunchSecurity != "", Phase: req.Phase, Managed: managed})
	if err != nil {
		if errors.Is(err, daemon.ErrNotRunning) {
			return nil, ErrDaemonDown
		}
		return nil, err
	}
	out := &CheckResult{Allow: r.Decision == "allow" ||
		(r.Decision == daemon.DecisionDeferred && req.Phase != PhaseStart)}
	for _, dd := range r.Devices {
		res := DeviceResult{BDF: dd.BDF, Decision: dd.Decision, TDIState: dd.TDIState}
		for _, rr := range dd.Reasons {
			res.Reasons = append(res.Reasons, Reason{Code: rr.Code, Message: rr.Message})
		}
		out.Devices = append(out.Devices, res)
	}
	return out, nil
}

// Start starts the TDIs the daemon locked for the domain.
func (d DaemonClient) Start(ctx context.Context, domain string, bdfs []pci.BDF) error {
	return d.C.StartDomain(ctx, daemon.DomainRequest{Domain: domain, BDFs: bdfs})
}

// Release releases everything the domain held.
func (d DaemonClient) Release(ctx context.Context, domain string, bdfs []pci.BDF) error {
	return d.C.Release(ctx, daemon.DomainRequest{Domain: domain, BDFs: bdfs})
}

func bdfsOf(h []HostPCI) []pci.BDF {
	out := make([]pci.BDF, len(h))
	for i := range h {
		out[i] = h[i].BDF
	}
	return out
}
