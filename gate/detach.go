package gate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// preBound is a group that Bind moved to vfio-pci before attesting it.
type preBound struct {
	bdfs     []pci.BDF
	original map[pci.BDF]vfio.Before
}

// detachForAttestation moves, for Bind only, every requested function that is
// on a host driver to vfio-pci before it is attested. A host driver owns the
// DOE mailbox (the kernel may drive it: cxl_pci reads CDAT, the PCI TSM runs
// CMA), so pci.MayDriveDOE refuses raw DOE under it; vfio-pci neither uses
// nor exposes DOE. Whole groups move together, by the same plan and undo
// rules as a normal bind; a group that cannot move (not viable) stays where
// it is, and its attestation reports mailbox-owned. The caller holds every
// function's lock, and gives a denied group back to its original drivers
// (restorePreBound): on deny nothing stays changed.
func (g *Gate) detachForAttestation(ctx context.Context, items []*item) map[int]*preBound {
	groups := map[int][]pci.BDF{}
	for _, it := range items {
		fn, err := g.o.System.Function(it.bdf)
		if err != nil || fn.IOMMUGroup == nil || fn.Driver == "" || fn.Driver == vfio.Driver {
			continue
		}
		groups[*fn.IOMMUGroup] = nil
	}
	out := map[int]*preBound{}
	root := g.o.System.Root()
	for _, n := range slices.Sorted(maps.Keys(groups)) {
		var bdfs []pci.BDF
		for _, it := range items {
			if fn, err := g.o.System.Function(it.bdf); err == nil && fn.IOMMUGroup != nil && *fn.IOMMUGroup == n {
				bdfs = append(bdfs, it.bdf)
			}
		}
		plan, err := vfio.PlanBind(root, bdfs, vfio.PlanOptions{Exempt: g.exempt, AllowBound: true})
		if err != nil {
			g.log.InfoContext(ctx, "group stays on its drivers for attestation", "group", n, "err", err)
			continue
		}
		if err := vfio.Apply(ctx, root, plan, g.o.Bind); err != nil {
			g.log.WarnContext(ctx, "moving group to vfio-pci for attestation failed", "group", n, "err", err)
			continue
		}
		g.log.InfoContext(ctx, "moved group to vfio-pci for attestation", "group", n, "bdfs", fmt.Sprint(bdfs))
		out[n] = &preBound{bdfs: bdfs, original: plan.Before()}
	}
	return out
}

// restorePreBound gives a pre-bound group back to its original drivers.
func (g *Gate) restorePreBound(ctx context.Context, pb *preBound) error {
	err := vfio.ReleaseTo(context.WithoutCancel(ctx), g.o.System.Root(), pb.original, g.o.Bind)
	if err != nil {
		return fmt.Errorf("gate: giving %v back to their drivers after a deny: %w", pb.bdfs, err)
	}
	return nil
}

// settlePreBound keeps allowed pre-bound groups on vfio-pci (remembering their
// original drivers for Release) and restores the others.
func (g *Gate) settlePreBound(ctx context.Context, items []*item, pre map[int]*preBound, req Request) {
	for _, n := range slices.Sorted(maps.Keys(pre)) {
		pb := pre[n]
		var members []*item
		allowed := true
		for _, it := range items {
			if slices.Contains(pb.bdfs, it.bdf) {
				members = append(members, it)
				allowed = allowed && it.d.Verdict.Allow && it.d.Err == nil
			}
		}
		if !allowed {
			if err := g.restorePreBound(ctx, pb); err != nil {
				for _, it := range members {
					it.d.Err = errors.Join(it.d.Err, err)
				}
			}
			continue
		}
		var errs []error
		for _, it := range members {
			rec := boundRecord{BDF: it.bdf.String(), Driver: pb.original[it.bdf].Driver, Override: pb.original[it.bdf].Override, Domain: req.Domain,
				VendorID: jsonhex.U16(it.d.Identity.VendorID), DeviceID: jsonhex.U16(it.d.Identity.DeviceID), DSN: (*jsonhex.U64)(it.d.Identity.DSN), Time: g.now().UTC()}
			errs = append(errs, g.saveBound(rec))
		}
		if err := errors.Join(errs...); err != nil {
			err = errors.Join(fmt.Errorf("gate: remember original drivers: %w", err), g.restorePreBound(ctx, pb))
			for _, it := range members {
				it.d.Err = err
			}
			continue
		}
		for _, it := range members {
			it.d.Bound = true
		}
	}
}
