package attest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/vfio-gate/vfio-gate/doe"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/target"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// ErrNoSecuredCMA is returned by OpenSession when no DOE mailbox of the
// function offers both CMA-SPDM and secured CMA-SPDM.
var ErrNoSecuredCMA = errors.New("attest: no DOE mailbox offers CMA-SPDM and secured CMA-SPDM")

// OpenSession opens an authenticated SPDM secure session with the function
// at bdf through its DOE mailbox, under the same ownership rules as Function
// (pci.System.MayDriveDOE, writable config space): it is OpenTargetSession
// of the function (target.PCI) with the per-function lock taken in lockDir.
// The lock is held for the whole session: a TDI's session keeps its mailbox
// busy (heartbeats, key updates).
func OpenSession(ctx context.Context, sys *pci.System, bdf pci.BDF, lockDir string, o *Options) (*spdm.Session, func(), error) {
	var d *doe.Options
	if o != nil {
		d = o.DOE
	}
	s, release, err := OpenTargetSession(ctx, &target.PCI{System: sys, BDF: bdf, LockDir: lockDir, DOE: d}, o)
	if errors.Is(err, ErrNoSecuredCMA) {
		return nil, nil, fmt.Errorf("%w (%s)", ErrNoSecuredCMA, bdf)
	}
	return s, release, err
}

// OpenTargetSession opens t and an authenticated SPDM secure session over
// its CMA and secured-CMA transports: VCA, the certificate of o.Slot
// (default 0) verified against o.Roots (spdm.ErrChainNotVerified
// otherwise), KEY_EXCHANGE/FINISH. release closes what opening t took
// (config space, lock, connection); call it after the session ended. A
// target that cannot be opened is a *target.OpenError; one without secured
// CMA is ErrNoSecuredCMA.
func OpenTargetSession(ctx context.Context, t target.Target, o *Options) (*spdm.Session, func(), error) {
	r := newRun(o)
	conn, err := t.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	release := func() { _ = conn.Close() }
	if conn.CMA == nil || conn.Secured == nil {
		release()
		return nil, nil, ErrNoSecuredCMA
	}
	ro, err := r.requesterOptions()
	if err != nil {
		release()
		return nil, nil, err
	}
	slot := uint8(0)
	if r.o.Slot != nil {
		slot = *r.o.Slot
	}
	_, s, err := spdm.OpenSession(ctx, conn.CMA, conn.Secured, ro, slot)
	if err != nil {
		release()
		return nil, nil, err
	}
	return s, release, nil
}

// SessionOpener adapts OpenSession to tdisp.OpenFunc, for the daemon's
// tdisp.Broker; every session is authenticated by o.Roots.
func SessionOpener(sys *pci.System, lockDir string, o *Options) tdisp.OpenFunc {
	var roots []*x509.Certificate
	if o != nil {
		roots = o.Roots
	}
	return SessionOpenerFor(sys, lockDir, o, func(Identity) []*x509.Certificate { return roots })
}

// SessionOpenerFor is SessionOpener with the trust anchors of each session
// given by anchors(identity of the function) (the policy rule's). A function
// without anchors is refused: a session with an unauthenticated device
// proves nothing.
func SessionOpenerFor(sys *pci.System, lockDir string, o *Options, anchors func(Identity) []*x509.Certificate) tdisp.OpenFunc {
	return func(ctx context.Context, bdf pci.BDF) (tdisp.OwnedSession, func(), error) {
		fn, err := sys.Function(bdf)
		if err != nil {
			return nil, nil, err
		}
		id := Identity{BDF: bdf.String(), VendorID: fn.VendorID, DeviceID: fn.DeviceID,
			SubsystemVendorID: fn.SubsystemVendorID, SubsystemID: fn.SubsystemDeviceID, Class: fn.Class, Revision: fn.Revision}
		roots := anchors(id)
		if len(roots) == 0 {
			return nil, nil, fmt.Errorf("%s: no policy rule with trust anchors matches %04x:%04x: a session with an unauthenticated device proves nothing", bdf, fn.VendorID, fn.DeviceID)
		}
		oo := Options{}
		if o != nil {
			oo = *o
		}
		oo.Roots = roots
		s, release, err := OpenSession(ctx, sys, bdf, lockDir, &oo)
		if err != nil {
			return nil, nil, err
		}
		return s, release, nil
	}
}
