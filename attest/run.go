package attest

import (
	"context"
	"log/slog"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// Request names the device Run attests: an spdm-socket peer (Socket), or
// otherwise the PCI function BDF of the sysfs tree at SysfsRoot.
type Request struct {
	// Socket is the peer's HOST:PORT; VendorID and DeviceID are its IDs
	// when the operator knows them (zero: from the leaf's CMA SAN).
	Socket             string
	VendorID, DeviceID uint16

	BDF       pci.BDF
	SysfsRoot string
	PCI       *pci.Options // how sysfs and config space are opened; nil = defaults
	LockDir   string       // the per-function lock is taken there for the attestation
}

// Run attests the device of req: it reaches the device (dials the socket
// peer; or opens sysfs, checks the function exists and takes its lock),
// each within o.Timeout, then runs Transport or Function. A device that
// cannot be reached is a *target.OpenError naming the step (connect,
// function, lock) and no Evidence; otherwise the errors are those of
// Transport and Function.
func Run(ctx context.Context, req Request, o *Options) (*Evidence, error) {
	oo := Options{}
	if o != nil {
		oo = *o
	}
	if req.Socket != "" {
		return runSocket(ctx, req, &oo)
	}
	sys, err := pci.Open(req.SysfsRoot, req.PCI)
	if err != nil {
		return nil, &target.OpenError{Step: target.StepFunction, Err: err}
	}
	defer sys.Close()
	// No lock file for a function that does not exist (a typo'd BDF).
	if _, err := sys.Function(req.BDF); err != nil {
		return nil, &target.OpenError{Step: target.StepFunction, Err: err}
	}
	lctx, cancel := context.WithTimeout(ctx, oo.Timeout)
	unlock, err := pci.LockFunction(lctx, req.LockDir, req.BDF)
	cancel()
	if err != nil {
		return nil, &target.OpenError{Step: target.StepLock, Err: err}
	}
	defer unlock()
	return Function(ctx, sys, req.BDF, &oo)
}

// runSocket attests the socket peer of req over its CMA and secured-CMA channels.
func runSocket(ctx context.Context, req Request, o *Options) (*Evidence, error) {
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	c, err := (&target.Socket{Addr: req.Socket}).Open(dctx)
	cancel()
	if err != nil {
		return nil, err
	}
	o.SecuredTransport = c.Secured
	ev, err := Transport(ctx, c.CMA, Identity{Socket: req.Socket, VendorID: req.VendorID, DeviceID: req.DeviceID}, o)
	if cerr := c.Close(); cerr != nil {
		log := o.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		log.Debug("closing the spdm-socket connection", "err", cerr)
	}
	return ev, err
}
