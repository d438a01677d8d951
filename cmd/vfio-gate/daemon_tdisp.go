package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// doeSessionOpener returns the daemon's tdisp.OpenFunc: attest.OpenSession
// (the function's lock held for the session's life, its DOE mailbox with
// CMA and secured CMA, a secure SPDM session) authenticated by the trust
// anchors of the policy rule that matches the function. A function no rule
// with anchors matches is refused: a session with an unauthenticated device
// proves nothing.
func doeSessionOpener(sys *pci.System, pol *policy.Policy, lockDir string, timeout time.Duration, log *slog.Logger) tdisp.OpenFunc {
	return func(ctx context.Context, bdf pci.BDF) (tdisp.OwnedSession, func(), error) {
		fn, err := sys.Function(bdf)
		if err != nil {
			return nil, nil, err
		}
		id := attest.Identity{BDF: bdf.String(), VendorID: fn.VendorID, DeviceID: fn.DeviceID,
			SubsystemVendorID: fn.SubsystemVendorID, SubsystemID: fn.SubsystemDeviceID, Class: fn.Class, Revision: fn.Revision}
		roots := pol.TrustAnchors(id)
		if len(roots) == 0 {
			return nil, nil, fmt.Errorf("%s: no policy rule with trust anchors matches %04x:%04x: a session with an unauthenticated device proves nothing", bdf, fn.VendorID, fn.DeviceID)
		}
		s, release, err := attest.OpenSession(ctx, sys, bdf, lockDir, &attest.Options{Roots: roots, Timeout: timeout, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return s, release, nil
	}
}
