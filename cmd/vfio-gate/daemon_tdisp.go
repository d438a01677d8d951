package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// doeSessionOpener returns the daemon's tdisp.OpenFunc: under the
// function's lock (held for the session's life), the DOE mailbox offering
// CMA and secured CMA, a secure session authenticated by the trust anchors
// of the policy rule that matches the function.
func doeSessionOpener(sys *pci.System, pol *policy.Policy, lockDir string, log *slog.Logger) tdisp.OpenFunc {
	return func(ctx context.Context, bdf pci.BDF) (tdisp.OwnedSession, func(), error) {
		var closers []func()
		release := func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
		fail := func(err error) (tdisp.OwnedSession, func(), error) {
			release()
			return nil, nil, err
		}
		unlock, err := pci.LockFunction(ctx, lockDir, bdf)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = unlock() })
		fn, err := sys.Function(bdf)
		if err != nil {
			return fail(err)
		}
		id := attest.Identity{BDF: bdf.String(), VendorID: fn.VendorID, DeviceID: fn.DeviceID,
			SubsystemVendorID: fn.SubsystemVendorID, SubsystemID: fn.SubsystemDeviceID, Class: fn.Class, Revision: fn.Revision}
		roots := pol.TrustAnchors(id)
		if len(roots) == 0 {
			return fail(fmt.Errorf("%s: no policy rule with trust anchors matches %04x:%04x: a session with an unauthenticated device proves nothing", bdf, fn.VendorID, fn.DeviceID))
		}
		if err := sys.MayDriveDOE(fn); err != nil {
			return fail(err)
		}
		cfg, closer, err := fn.OpenConfig()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { closer.Close() })
		mbs, err := doe.Find(cfg, nil)
		if err != nil && len(mbs) == 0 {
			return fail(err)
		}
		var plain, sec spdm.Transport
		for _, mb := range mbs {
			if _, err := mb.Discover(ctx); err != nil {
				continue
			}
			if mb.Supports(doe.FeatureCMA) && mb.Supports(doe.FeatureSecuredCMA) {
				plain, sec = mb.Exchanger(doe.FeatureCMA), mb.Exchanger(doe.FeatureSecuredCMA)
				break
			}
		}
		if plain == nil {
			return fail(fmt.Errorf("%s: no DOE mailbox offers CMA-SPDM and secured CMA-SPDM", bdf))
		}
		_, s, err := spdm.OpenSession(ctx, plain, sec, &spdm.Options{Roots: roots, Logger: log}, 0)
		if err != nil {
			return fail(fmt.Errorf("%s: secure session: %w", bdf, err))
		}
		if s == nil {
			return fail(errors.New("spdm: no session"))
		}
		return s, release, nil
	}
}
