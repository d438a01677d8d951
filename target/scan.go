package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
)

// Facts is what Scan found about one function.
type Facts struct {
	Function *pci.Function
	DSN      *uint64 // nil when the function has none or it was not read
	// Mailboxes has one entry per DOE extended capability, in config-space
	// order: the features discovery listed, or why it did not run.
	Mailboxes []Discovery
	// Skipped says why discovery ran on no mailbox ("" when it ran, or
	// when there is no mailbox): ScanOptions.NoDOE, or MayDriveDOE's reason.
	Skipped string
	// Problems are what could not be read (config space, extended
	// capabilities, serial number), in that order; the function is still listed.
	Problems []error
}

// ScanOptions says how far Scan may go.
type ScanOptions struct {
	NoDOE   bool   // never run discovery: config space is only read
	LockDir string // the per-function lock held while discovery runs
	// Timeout bounds discovery, lock wait included (zero or less: no time
	// at all, so discovery fails).
	Timeout time.Duration
	Logger  *slog.Logger // nil: discard
}

// Scan reads one function read-only (identity, driver, IOMMU group,
// serial number, DOE capabilities), then runs DOE discovery on its
// mailboxes where MayDriveDOE allows it (Discover: under the lock, on a
// writable config space). Problems that leave the function listed go to
// Facts; only a missing or vanished function (pci.ErrNoDevice,
// pci.ErrDeviceRemoved) is an error.
func Scan(ctx context.Context, sys *pci.System, bdf pci.BDF, o *ScanOptions) (*Facts, error) {
	if o == nil {
		o = &ScanOptions{}
	}
	f, err := sys.Function(bdf)
	if err != nil {
		return nil, err
	}
	fc := &Facts{Function: f, Mailboxes: []Discovery{}}
	offs, err := fc.readOnly(f)
	if err != nil || len(offs) == 0 {
		return fc, err
	}
	switch {
	case o.NoDOE:
		fc.Skipped = "--no-doe"
	default:
		if err := sys.MayDriveDOE(f); err != nil {
			var be *pci.BlockedError
			if errors.As(err, &be) {
				fc.Skipped = be.Reason
			} else {
				fc.Skipped = err.Error()
			}
		}
	}
	if fc.Skipped != "" {
		for _, off := range offs {
			fc.Mailboxes = append(fc.Mailboxes, Discovery{Offset: off, Features: []string{}, Skipped: fc.Skipped})
		}
		return fc, nil
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	fc.Mailboxes = Discover(ctx, &PCI{System: sys, BDF: bdf, LockDir: o.LockDir, Offsets: offs,
		DOE: &doe.Options{Logger: log.With("bdf", bdf.String())}})
	for _, d := range fc.Mailboxes {
		if errors.Is(d.Err, pci.ErrDeviceRemoved) {
			return nil, d.Err
		}
	}
	return fc, nil
}

// readOnly reads the serial number and the DOE capability offsets through
// a read-only config space, recording what fails in Problems. Only a
// vanished function is an error.
func (fc *Facts) readOnly(f *pci.Function) ([]uint16, error) {
	cfg, closer, err := f.OpenConfigReadOnly()
	if err != nil {
		if errors.Is(err, pci.ErrDeviceRemoved) {
			return nil, err
		}
		fc.Problems = append(fc.Problems, err)
		return nil, nil
	}
	defer closer.Close()
	caps, err := pci.ExtCapabilities(cfg)
	if err != nil {
		if errors.Is(err, pci.ErrDeviceRemoved) {
			return nil, err
		}
		fc.Problems = append(fc.Problems, fmt.Errorf("extended capabilities: %w", err))
	} else if dsn, ok, err := f.DSN(cfg); err != nil {
		fc.Problems = append(fc.Problems, fmt.Errorf("device serial number: %w", err))
	} else if ok {
		fc.DSN = &dsn
	}
	return pci.FindExt(caps, pci.ExtCapIDDOE), nil
}
