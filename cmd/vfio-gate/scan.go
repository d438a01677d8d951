package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// scanJSON is `scan --json` (docs/json.md, docs/schema/scan.v1.json).
type scanJSON struct {
	Functions []scanEntry `json:"functions"`
}

// scanEntry is one function in `scan --json` (keys documented in docs/guide.md).
type scanEntry struct {
	BDF               string    `json:"bdf"`
	VendorID          string    `json:"vendor_id"`
	DeviceID          string    `json:"device_id"`
	SubsystemVendorID string    `json:"subsystem_vendor_id"`
	SubsystemID       string    `json:"subsystem_id"`
	Class             string    `json:"class"`
	Revision          string    `json:"revision"`
	Driver            *string   `json:"driver"`
	DriverOverride    *string   `json:"driver_override"`
	IOMMUGroup        *int      `json:"iommu_group"`
	IOMMUGroupMembers []string  `json:"iommu_group_members"`
	DSN               *string   `json:"dsn"`
	DOE               []scanDOE `json:"doe"`
	Errors            []string  `json:"errors"`
}

// scanDOE is one DOE mailbox: its capability offset, the features its
// discovery listed, and why discovery was skipped (absent when it ran).
type scanDOE struct {
	Offset   string   `json:"offset"`
	Features []string `json:"features"`
	Skipped  string   `json:"skipped,omitempty"`
}

type scanFlags struct {
	noDOE   bool
	lockDir string
	timeout time.Duration
}

func newScanCmd(e *env, g *globals) *cobra.Command {
	sf := &scanFlags{}
	c := &cobra.Command{
		Use:   "scan [BDF...]",
		Short: "List PCI functions with IDs, driver, IOMMU group and DOE mailbox features",
		Example: `  vfio-gate scan --no-doe                      # read-only, any machine
  sudo vfio-gate scan 0000:3b:00.0             # with DOE discovery where allowed
  vfio-gate scan --json --no-doe 0000:00:03.0`,
		Long: `scan lists every PCI function (or the ones named, as 0000:3b:00.0) with vendor and device
IDs, class, bound driver, IOMMU group and the DOE mailboxes found in extended config space.

DOE discovery runs only where user space may drive the mailbox: no driver or vfio-pci bound,
tsm/connect empty, kernel lockdown "none", running as root. It holds the per-function lock
(--lock-dir) while it runs. Otherwise the mailbox is listed with the reason discovery was
skipped. --no-doe never writes to any device (read-only scan).

Needs: root for extended config space (without CAP_SYS_ADMIN the kernel serves 64 bytes, so DOE
and the serial number are not read) and for discovery. No policy, TPM or daemon.

With --json the output is one JSON object, {"schema": "vfio-gate/scan/v1", "functions": [...]};
see docs/json.md and docs/guide.md "vfio-gate scan".

Exit codes: 0 success (per-function problems are listed in "errors"); 1 usage error
(malformed BDF); 4 a named function does not exist or vanished during the scan.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScan(cmd.Context(), e, g, sf, args)
		},
	}
	c.Flags().BoolVar(&sf.noDOE, "no-doe", false, "do not run DOE discovery: never write to config space")
	c.Flags().StringVar(&sf.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	c.Flags().DurationVar(&sf.timeout, "timeout", 10*time.Second, "DOE discovery budget per function")
	return c
}

func runScan(ctx context.Context, e *env, g *globals, sf *scanFlags, args []string) error {
	var named []pci.BDF
	for _, a := range args {
		b, err := pci.ParseBDF(a)
		if err != nil {
			return usageErrorf("scan: %v", err)
		}
		named = append(named, b)
	}
	log := g.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sys, err := pci.Open(g.sysfsRoot, &pci.Options{ConfigOpener: e.configOpener, Logger: log})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer sys.Close()

	bdfs := named
	if len(named) == 0 {
		if bdfs, err = sys.Functions(); err != nil {
			return withCode(exitUnavailable, err)
		}
	}
	entries := []scanEntry{}
	var missing []error
	for _, b := range bdfs {
		ent, err := scanFunction(ctx, sys, b, sf, log)
		if err != nil {
			gone := errors.Is(err, pci.ErrNoDevice) || errors.Is(err, pci.ErrDeviceRemoved)
			if gone && len(named) == 0 {
				log.Warn("function vanished during the scan", "bdf", b.String(), "err", err)
				continue
			}
			if gone {
				missing = append(missing, err)
				continue
			}
			return err
		}
		entries = append(entries, *ent)
	}
	if g.json {
		if err := writeJSON(e.out, "scan", scanJSON{Functions: entries}); err != nil {
			return err
		}
	} else if err := printScanTable(e.out, entries); err != nil {
		return err
	}
	return errors.Join(missing...)
}

// scanFunction reads one function. Problems that leave the function listed
// (unreadable capabilities, skipped or failed discovery) go to Errors; only
// a missing or vanished function is returned as an error.
func scanFunction(ctx context.Context, sys *pci.System, b pci.BDF, sf *scanFlags, log *slog.Logger) (*scanEntry, error) {
	f, err := sys.Function(b)
	if err != nil {
		return nil, err
	}
	ent := &scanEntry{
		BDF:               b.String(),
		VendorID:          fmt.Sprintf("0x%04x", f.VendorID),
		DeviceID:          fmt.Sprintf("0x%04x", f.DeviceID),
		SubsystemVendorID: fmt.Sprintf("0x%04x", f.SubsystemVendorID),
		SubsystemID:       fmt.Sprintf("0x%04x", f.SubsystemDeviceID),
		Class:             fmt.Sprintf("0x%06x", f.Class),
		Revision:          fmt.Sprintf("0x%02x", f.Revision),
		IOMMUGroup:        f.IOMMUGroup,
		IOMMUGroupMembers: []string{},
		DOE:               []scanDOE{},
		Errors:            []string{},
	}
	if f.Driver != "" {
		ent.Driver = &f.Driver
	}
	if f.DriverOverride != "" {
		ent.DriverOverride = &f.DriverOverride
	}
	for _, m := range f.GroupMembers {
		ent.IOMMUGroupMembers = append(ent.IOMMUGroupMembers, m.String())
	}
	addErr := func(err error) {
		switch {
		case errors.Is(err, pci.ErrNeedCapSysAdmin):
			ent.Errors = append(ent.Errors, "config space beyond 64 bytes needs CAP_SYS_ADMIN: extended capabilities (DOE, DSN) not read")
		default:
			ent.Errors = append(ent.Errors, err.Error())
		}
	}

	cfg, closer, err := f.OpenConfigReadOnly()
	if err != nil {
		if errors.Is(err, pci.ErrDeviceRemoved) {
			return nil, err
		}
		addErr(err)
		return ent, nil
	}
	defer closer.Close()
	caps, err := pci.ExtCapabilities(cfg)
	if err != nil {
		if errors.Is(err, pci.ErrDeviceRemoved) {
			return nil, err
		}
		addErr(fmt.Errorf("extended capabilities: %w", err))
	}
	if err == nil {
		if dsn, ok, err := f.DSN(cfg); err != nil {
			addErr(fmt.Errorf("device serial number: %w", err))
		} else if ok {
			s := fmt.Sprintf("0x%016x", dsn)
			ent.DSN = &s
		}
	}
	offs := pci.FindExt(caps, pci.ExtCapIDDOE)
	if len(offs) == 0 {
		return ent, nil
	}

	skip := ""
	switch {
	case sf.noDOE:
		skip = "--no-doe"
	default:
		if err := sys.MayDriveDOE(f); err != nil {
			var be *pci.BlockedError
			if errors.As(err, &be) {
				skip = be.Reason
			} else {
				skip = err.Error()
			}
		}
	}
	if skip != "" {
		for _, off := range offs {
			ent.DOE = append(ent.DOE, scanDOE{Offset: fmt.Sprintf("0x%04x", off), Features: []string{}, Skipped: skip})
		}
		ent.Errors = append(ent.Errors, "discovery skipped: "+skip)
		return ent, nil
	}
	for _, d := range discoverAll(ctx, sys, f, offs, sf, log) {
		ent.DOE = append(ent.DOE, d.scanDOE)
		if d.err != nil {
			if errors.Is(d.err, pci.ErrDeviceRemoved) {
				return nil, d.err
			}
			ent.Errors = append(ent.Errors, fmt.Sprintf("DOE at %s: %v", d.Offset, d.err))
		}
	}
	return ent, nil
}

type discovered struct {
	scanDOE
	err error
}

// discoverAll runs DOE discovery on the mailboxes at offs (target.Discover):
// one entry per offset.
func discoverAll(ctx context.Context, sys *pci.System, f *pci.Function, offs []uint16, sf *scanFlags, log *slog.Logger) []discovered {
	ctx, cancel := context.WithTimeout(ctx, sf.timeout)
	defer cancel()
	var out []discovered
	for _, d := range target.Discover(ctx, &target.PCI{System: sys, BDF: f.BDF, LockDir: sf.lockDir, Offsets: offs,
		DOE: &doe.Options{Logger: log.With("bdf", f.BDF.String())}}) {
		out = append(out, discovered{scanDOE{Offset: fmt.Sprintf("0x%04x", d.Offset), Features: d.Features, Skipped: d.Skipped}, d.Err})
	}
	return out
}

func printScanTable(w io.Writer, entries []scanEntry) error {
	if len(entries) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BDF\tVENDOR:DEVICE\tCLASS\tDRIVER\tGROUP\tDOE")
	for _, e := range entries {
		drv, grp := "-", "-"
		if e.Driver != nil {
			drv = *e.Driver
		}
		if e.IOMMUGroup != nil {
			grp = fmt.Sprint(*e.IOMMUGroup)
		}
		var doeCol []string
		for _, d := range e.DOE {
			switch {
			case d.Skipped != "":
				doeCol = append(doeCol, d.Offset+": (discovery skipped)")
			default:
				doeCol = append(doeCol, d.Offset+": "+strings.Join(d.Features, ","))
			}
		}
		if len(doeCol) == 0 {
			doeCol = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\t%s\t%s\n", e.BDF, e.VendorID[2:], e.DeviceID[2:], e.Class, drv, grp, strings.Join(doeCol, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range entries {
		for _, msg := range e.Errors {
			if _, err := fmt.Fprintf(w, "%s: %s\n", e.BDF, msg); err != nil {
				return err
			}
		}
	}
	return nil
}
