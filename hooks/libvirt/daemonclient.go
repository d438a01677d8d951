package libvirt

import (
	"context"
	"errors"
	"slices"
	"time"

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
//
// A daemon that is starting (its socket not there yet, or it answers
// "starting" while it recovers) is waited for, retrying every Poll until
// the request's context ends (the hook's --budget): at boot libvirt may
// start autostart domains while vfio-gate is still coming up. Only then is
// the daemon reported down, which denies. Release waits only for a daemon
// that answers "starting".
type DaemonClient struct {
	C DaemonAPI
	// Poll is the retry interval while the daemon starts; zero means 250ms.
	Poll time.Duration
}

// retry runs fn until it returns something other than "not running" or
// "starting", or ctx ends; it then returns fn's last error.
func (d DaemonClient) retry(ctx context.Context, fn func() error) error {
	return d.retryIf(ctx, true, fn)
}

// retryIf is retry; with down false a daemon that is not running at all is
// not waited for (only one that answers "starting").
func (d DaemonClient) retryIf(ctx context.Context, down bool, fn func() error) error {
	poll := d.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	for {
		err := fn()
		var ae *daemon.APIError
		starting := errors.As(err, &ae) && ae.Code == daemon.CodeStarting
		if err == nil || !(starting || down && errors.Is(err, daemon.ErrNotRunning)) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// Check asks the daemon to gate (and, per policy, lock) the domain's
// functions in the request's phase, saying which are managed='yes'.
func (d DaemonClient) Check(ctx context.Context, req CheckRequest) (*CheckResult, error) {
	var managed []pci.BDF
	for _, h := range req.Devices {
		if h.Managed && !slices.Contains(managed, h.BDF) {
			managed = append(managed, h.BDF)
		}
	}
	var r *daemon.CheckResponse
	err := d.retry(ctx, func() (err error) {
		r, err = d.C.Check(ctx, daemon.CheckRequest{Domain: req.Domain, Confidential: req.Confidential, LaunchSecurity: req.LaunchSecurity,
			BDFs: bdfsOf(req.Devices), Lock: req.Confidential || req.LaunchSecurity != "", Phase: req.Phase, Managed: managed})
		return err
	})
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
	return d.retry(ctx, func() error { return d.C.StartDomain(ctx, daemon.DomainRequest{Domain: domain, BDFs: bdfs}) })
}

// Release releases everything the domain held.
func (d DaemonClient) Release(ctx context.Context, domain string, bdfs []pci.BDF) error {
	// A daemon that is not running holds nothing to release now (libvirt
	// ignores release's status; the daemon reconciles with libvirt when it
	// starts): do not hold every domain stop for the budget.
	return d.retryIf(ctx, false, func() error { return d.C.Release(ctx, daemon.DomainRequest{Domain: domain, BDFs: bdfs}) })
}

func bdfsOf(h []HostPCI) []pci.BDF {
	out := make([]pci.BDF, len(h))
	for i := range h {
		out[i] = h[i].BDF
	}
	return out
}
