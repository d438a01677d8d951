package attest

import (
	"context"
	"errors"
	"fmt"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/spdm"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// ErrNoSecuredCMA is returned by OpenSession when no DOE mailbox of the
// function offers both CMA-SPDM and secured CMA-SPDM.
var ErrNoSecuredCMA = errors.New("attest: no DOE mailbox offers CMA-SPDM and secured CMA-SPDM")

// OpenSession opens an authenticated SPDM secure session with the function
// at bdf through its DOE mailbox, under the same ownership rules as Function
// (pci.System.MayDriveDOE, writable config space): it takes the per-function
// lock in lockDir, runs VCA, reads the certificate of o.Slot (default 0),
// verifies it against o.Roots (spdm.ErrChainNotVerified otherwise) and runs
// KEY_EXCHANGE/FINISH. release closes the config space and drops the lock;
// call it after the session ended. The lock is held for the whole session:
// a TDI's session keeps its mailbox busy (heartbeats, key updates).
func OpenSession(ctx context.Context, sys *pci.System, bdf pci.BDF, lockDir string, o *Options) (s *spdm.Session, release func(), err error) {
	r := newRun(o)
	var closers []func()
	rel := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			rel()
		}
	}()
	unlock, err := pci.LockFunction(ctx, lockDir, bdf)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { _ = unlock() })
	f, err := sys.Function(bdf)
	if err != nil {
		return nil, nil, err
	}
	if err := sys.MayDriveDOE(f); err != nil {
		return nil, nil, err
	}
	cfg, closer, err := f.OpenConfig()
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { closer.Close() })
	if w, ok := cfg.(interface{ Writable() bool }); ok && !w.Writable() {
		return nil, nil, fmt.Errorf("%w: %s: config space could not be opened for writing", pci.ErrReadOnlyConfig, bdf)
	}
	mbs, err := doe.Find(cfg, r.o.DOE)
	if err != nil && len(mbs) == 0 {
		return nil, nil, err
	}
	for _, mb := range mbs {
		if _, err := mb.Discover(ctx); err != nil {
			continue
		}
		if !mb.Supports(doe.FeatureCMA) || !mb.Supports(doe.FeatureSecuredCMA) {
			continue
		}
		ro, err := r.requesterOptions()
		if err != nil {
			return nil, nil, err
		}
		slot := uint8(0)
		if r.o.Slot != nil {
			slot = *r.o.Slot
		}
		_, s, err := spdm.OpenSession(ctx, mb.Exchanger(doe.FeatureCMA), mb.Exchanger(doe.FeatureSecuredCMA), ro, slot)
		if err != nil {
			return nil, nil, err
		}
		return s, rel, nil
	}
	return nil, nil, fmt.Errorf("%w (%s)", ErrNoSecuredCMA, bdf)
}

// SessionOpener adapts OpenSession to tdisp.OpenFunc, for the daemon's
// tdisp.Broker.
func SessionOpener(sys *pci.System, lockDir string, o *Options) tdisp.OpenFunc {
	return func(ctx context.Context, bdf pci.BDF) (tdisp.OwnedSession, func(), error) {
		s, release, err := OpenSession(ctx, sys, bdf, lockDir, o)
		if err != nil {
			return nil, nil, err
		}
		return s, release, nil
	}
}
