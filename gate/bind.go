package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

// BoundSchema names the shape of a <state-dir>/bound/<BDF>.json file
// (docs/json.md). Files written before it have no "schema" and numeric IDs;
// they still load.
const BoundSchema = "vfio-gate/bound/v1"

// boundRecord is what gate remembers about a function it bound.
type boundRecord struct {
	Schema string `json:"schema"`
	BDF    string `json:"bdf"`
	Driver string `json:"original_driver"` // "" = none
	// Override is the driver_override before the bind ("" = none), put
	// back on release (driverctl's "vfio-pci" stays).
	Override string       `json:"original_override,omitempty"`
	Domain   string       `json:"domain,omitempty"`
	VendorID jsonhex.U16  `json:"vendor_id"`
	DeviceID jsonhex.U16  `json:"device_id"`
	DSN      *jsonhex.U64 `json:"dsn,omitempty"`
	Time     time.Time    `json:"time"`
}

// bind binds, group by group, the functions whose whole requested part of
// the group is allowed.
func (g *Gate) bind(ctx context.Context, items []*item, req Request) {
	groups := map[int][]*item{}
	for _, it := range items {
		if !it.d.Verdict.Allow || it.d.Err != nil {
			continue
		}
		if it.fn == nil || it.fn.IOMMUGroup == nil {
			// vfio reports the missing group (ErrNoIOMMU) as a bind error.
			_, err := vfio.PlanBind(g.o.System.Root(), []pci.BDF{it.bdf}, vfio.PlanOptions{Exempt: g.exempt})
			if err == nil {
				err = vfio.ErrNoIOMMU
			}
			it.d.Err = err
			continue
		}
		groups[*it.fn.IOMMUGroup] = append(groups[*it.fn.IOMMUGroup], it)
	}
	for _, n := range slices.Sorted(maps.Keys(groups)) {
		members := groups[n]
		// The group rule ran before recording: a denied member has made the
		// others deny too (enforce). In audit mode everything goes to vfio,
		// which refuses a group that is not viable.
		bdfs := make([]pci.BDF, len(members))
		for i, it := range members {
			bdfs[i] = it.bdf
		}
		err := g.bindGroup(ctx, bdfs, members, req)
		for _, it := range members {
			if err != nil {
				it.d.Err = err
			} else {
				it.d.Bound = true
			}
		}
	}
}

func (g *Gate) exempt(_ pci.BDF, class uint32) bool { return g.o.Policy.Exempt(class) }

func (g *Gate) bindGroup(ctx context.Context, bdfs []pci.BDF, members []*item, req Request) error {
	root := g.o.System.Root()
	plan, err := vfio.PlanBind(root, bdfs, vfio.PlanOptions{Exempt: g.exempt})
	if err != nil {
		return err
	}
	if err := vfio.Apply(ctx, root, plan, g.o.Bind); err != nil {
		return err
	}
	orig := plan.Before()
	var errs []error
	for _, it := range members {
		rec := boundRecord{BDF: it.bdf.String(), Driver: orig[it.bdf].Driver, Override: orig[it.bdf].Override, Domain: req.Domain,
			VendorID: jsonhex.U16(it.d.Identity.VendorID), DeviceID: jsonhex.U16(it.d.Identity.DeviceID), DSN: (*jsonhex.U64)(it.d.Identity.DSN), Time: g.now().UTC()}
		errs = append(errs, g.saveBound(rec))
	}
	if err := errors.Join(errs...); err != nil {
		// Without the record Release cannot restore the driver: undo.
		rerr := vfio.ReleaseTo(context.WithoutCancel(ctx), root, orig, g.o.Bind)
		return errors.Join(fmt.Errorf("gate: remember original drivers: %w", err), rerr)
	}
	return nil
}

func (g *Gate) boundPath(bdf string) string {
	return filepath.Join(g.o.StateDir, boundName(bdf))
}

// boundName is the record's name inside the state directory.
func boundName(bdf string) string { return "bound/" + bdf + ".json" }

// maxBoundRecord caps a bound record read back.
const maxBoundRecord = 64 << 10

func (g *Gate) saveBound(r boundRecord) error {
	if g.o.StateDir == "" {
		g.mu.Lock()
		defer g.mu.Unlock()
		b, _ := pci.ParseBDF(r.BDF)
		g.original[b] = r
		return nil
	}
	r.Schema = BoundSchema
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	root, err := statedir.Open(g.o.StateDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := statedir.MkdirAll(root, "bound"); err != nil {
		return err
	}
	return statedir.WriteFile(root, boundName(r.BDF), append(data, '\n'), 0o600)
}

func (g *Gate) loadBound(b pci.BDF) (boundRecord, bool, error) {
	if g.o.StateDir == "" {
		g.mu.Lock()
		defer g.mu.Unlock()
		r, ok := g.original[b]
		return r, ok, nil
	}
	root, err := statedir.Open(g.o.StateDir)
	if err != nil {
		return boundRecord{}, false, err
	}
	defer root.Close()
	data, err := statedir.ReadFile(root, boundName(b.String()), maxBoundRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return boundRecord{}, false, nil
	}
	if err != nil {
		return boundRecord{}, false, err
	}
	var r boundRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return boundRecord{}, false, fmt.Errorf("gate: %s: %w", g.boundPath(b.String()), err)
	}
	if r.BDF != b.String() {
		return boundRecord{}, false, fmt.Errorf("gate: %s holds the record of %q", g.boundPath(b.String()), r.BDF)
	}
	if r.Schema != "" && r.Schema != BoundSchema { // "": written before the schema name
		return boundRecord{}, false, fmt.Errorf("gate: %s is a %q document, want %q", g.boundPath(b.String()), r.Schema, BoundSchema)
	}
	return r, true, nil
}

func (g *Gate) dropBound(b pci.BDF) error {
	if g.o.StateDir == "" {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.original, b)
		return nil
	}
	root, err := statedir.Open(g.o.StateDir)
	if err != nil {
		return err
	}
	defer root.Close()
	return statedir.Remove(root, boundName(b.String()))
}

// Released is the outcome of releasing one function.
type Released struct {
	BDF pci.BDF
	// Driver is the original driver bound again ("" = left unbound).
	Driver   string
	Recorded bool
	Err      error
}

// Release gives functions back: under each function's lock it unbinds it
// from vfio-pci, clears driver_override, binds the driver it had before
// Bind (from the state record), and records a release event in the TPM. A
// function vfio-gate did not bind is refused (ErrNotBound) and left alone.
// The error joins every per-function failure.
func (g *Gate) Release(ctx context.Context, bdfs []pci.BDF, domain string) ([]Released, error) {
	list := pci.Normalize(bdfs)
	if len(list) == 0 {
		return nil, ErrNoFunctions
	}
	items, err := g.lockAll(ctx, list)
	if err != nil {
		return nil, err
	}
	defer unlockAll(items)
	out := make([]Released, len(list))
	var events []tpm.Event
	var eventOf []int
	for i, b := range list {
		out[i].BDF = b
		rec, ok, err := g.loadBound(b)
		if err != nil {
			out[i].Err = err
			continue
		}
		if !ok {
			out[i].Err = fmt.Errorf("%w: %s", ErrNotBound, b)
			continue
		}
		out[i].Driver = rec.Driver
		if err := vfio.ReleaseTo(ctx, g.o.System.Root(), map[pci.BDF]vfio.Before{b: {Driver: rec.Driver, Override: rec.Override}}, g.o.Bind); err != nil {
			out[i].Err = err
			continue
		}
		if err := g.dropBound(b); err != nil {
			out[i].Err = err
		}
		events = append(events, tpm.ReleaseEvent(tpm.Release{BDF: b.String(), VendorID: rec.VendorID, DeviceID: rec.DeviceID,
			DSN: rec.DSN, Domain: cmpOr(domain, rec.Domain), Reason: "released", Time: g.now()}))
		eventOf = append(eventOf, i)
	}
	recs, rerr := g.o.Recorder.Record(ctx, events...)
	for k, i := range eventOf {
		if k < len(recs) {
			out[i].Recorded = true
		} else if out[i].Err == nil {
			out[i].Err = cmpOrErr(rerr, errors.New("tpm: release event not recorded"))
		}
	}
	var errs []error
	for _, r := range out {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return out, errors.Join(errs...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func cmpOrErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
