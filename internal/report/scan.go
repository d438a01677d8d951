package report

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

// Scan is the body of the `scan` document (docs/json.md, docs/schema/scan.v1.json).
type Scan struct {
	Functions []ScanEntry `json:"functions"`
}

// ScanEntry is one function in `scan --json` (keys documented in docs/guide.md).
type ScanEntry struct {
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
	DOE               []ScanDOE `json:"doe"`
	Errors            []string  `json:"errors"`
}

// ScanDOE is one DOE mailbox: its capability offset, the features its
// discovery listed, and why discovery was skipped (absent when it ran).
type ScanDOE struct {
	Offset   string   `json:"offset"`
	Features []string `json:"features"`
	Skipped  string   `json:"skipped,omitempty"`
}

// ScanEntryOf is fc in its document form. Errors lists what could not be
// read, then why discovery was skipped, then each mailbox's discovery failure.
func ScanEntryOf(fc *target.Facts) ScanEntry {
	f := fc.Function
	ent := ScanEntry{
		BDF:               f.BDF.String(),
		VendorID:          fmt.Sprintf("0x%04x", f.VendorID),
		DeviceID:          fmt.Sprintf("0x%04x", f.DeviceID),
		SubsystemVendorID: fmt.Sprintf("0x%04x", f.SubsystemVendorID),
		SubsystemID:       fmt.Sprintf("0x%04x", f.SubsystemDeviceID),
		Class:             fmt.Sprintf("0x%06x", f.Class),
		Revision:          fmt.Sprintf("0x%02x", f.Revision),
		IOMMUGroup:        f.IOMMUGroup,
		IOMMUGroupMembers: []string{},
		DOE:               []ScanDOE{},
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
	if fc.DSN != nil {
		s := fmt.Sprintf("0x%016x", *fc.DSN)
		ent.DSN = &s
	}
	for _, err := range fc.Problems {
		if errors.Is(err, pci.ErrNeedCapSysAdmin) {
			ent.Errors = append(ent.Errors, "config space beyond 64 bytes needs CAP_SYS_ADMIN: extended capabilities (DOE, DSN) not read")
			continue
		}
		ent.Errors = append(ent.Errors, err.Error())
	}
	if fc.Skipped != "" {
		ent.Errors = append(ent.Errors, "discovery skipped: "+fc.Skipped)
	}
	for _, d := range fc.Mailboxes {
		off := fmt.Sprintf("0x%04x", d.Offset)
		ent.DOE = append(ent.DOE, ScanDOE{Offset: off, Features: d.Features, Skipped: d.Skipped})
		if d.Err != nil {
			ent.Errors = append(ent.Errors, fmt.Sprintf("DOE at %s: %v", off, d.Err))
		}
	}
	return ent
}

// WriteScan writes the scan table, then each function's errors as
// "BDF: message" lines. No entries: nothing.
func WriteScan(w io.Writer, entries []ScanEntry) error {
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

// ScanOf is the scan document of facts, in order; no facts is an empty
// list, never null.
func ScanOf(facts []*target.Facts) Scan {
	s := Scan{Functions: []ScanEntry{}}
	for _, fc := range facts {
		s.Functions = append(s.Functions, ScanEntryOf(fc))
	}
	return s
}
