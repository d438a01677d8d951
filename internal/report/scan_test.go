package report

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

func TestScanEntryOf(t *testing.T) {
	grp, dsn := 3, uint64(0x11)
	f := &pci.Function{BDF: pci.BDF{Bus: 0x3b}, VendorID: 0x1af4, DeviceID: 0x1041, Class: 0x020000, Revision: 1,
		Driver: "vfio-pci", IOMMUGroup: &grp, GroupMembers: []pci.BDF{{Bus: 0x3b, Function: 1}}}
	fc := &target.Facts{Function: f, DSN: &dsn,
		Problems: []error{fmt.Errorf("open: %w", pci.ErrNeedCapSysAdmin), errors.New("device serial number: bad")},
		Mailboxes: []target.Discovery{{Offset: 0x100, Features: []string{"discovery", "cma-spdm"}},
			{Offset: 0x118, Features: []string{}, Skipped: "per-function lock not acquired: busy", Err: errors.New("busy")}}}
	e := ScanEntryOf(fc)
	if e.BDF != "0000:3b:00.0" || e.VendorID != "0x1af4" || e.DeviceID != "0x1041" || e.Class != "0x020000" || e.Revision != "0x01" ||
		*e.Driver != "vfio-pci" || e.DriverOverride != nil || *e.IOMMUGroup != 3 || *e.DSN != "0x0000000000000011" ||
		fmt.Sprint(e.IOMMUGroupMembers) != "[0000:3b:00.1]" {
		t.Errorf("entry %+v", e)
	}
	wantErrs := []string{"config space beyond 64 bytes needs CAP_SYS_ADMIN: extended capabilities (DOE, DSN) not read",
		"device serial number: bad", "DOE at 0x0118: busy"}
	if fmt.Sprint(e.Errors) != fmt.Sprint(wantErrs) || len(e.DOE) != 2 || e.DOE[1].Offset != "0x0118" || e.DOE[1].Skipped == "" {
		t.Errorf("errors %q doe %+v", e.Errors, e.DOE)
	}
	// Skipped everywhere: one line says why.
	e = ScanEntryOf(&target.Facts{Function: &pci.Function{}, Skipped: "--no-doe",
		Mailboxes: []target.Discovery{{Offset: 0x100, Features: []string{}, Skipped: "--no-doe"}}})
	if fmt.Sprint(e.Errors) != "[discovery skipped: --no-doe]" || e.Driver != nil || e.DSN != nil || e.IOMMUGroupMembers == nil {
		t.Errorf("skipped: %+v", e)
	}

	var b strings.Builder
	if err := WriteScan(&b, nil); err != nil || b.Len() != 0 {
		t.Errorf("no entries: %v %q", err, b.String())
	}
	if err := WriteScan(&b, []ScanEntry{ScanEntryOf(fc), e}); err != nil {
		t.Fatal(err)
	}
	want := `BDF           VENDOR:DEVICE  CLASS     DRIVER    GROUP  DOE
0000:3b:00.0  1af4:1041      0x020000  vfio-pci  3      0x0100: discovery,cma-spdm; 0x0118: (discovery skipped)
0000:00:00.0  0000:0000      0x000000  -         -      0x0100: (discovery skipped)
0000:3b:00.0: config space beyond 64 bytes needs CAP_SYS_ADMIN: extended capabilities (DOE, DSN) not read
0000:3b:00.0: device serial number: bad
0000:3b:00.0: DOE at 0x0118: busy
0000:00:00.0: discovery skipped: --no-doe
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestScanOf(t *testing.T) {
	if s := ScanOf(nil); s.Functions == nil || len(s.Functions) != 0 {
		t.Errorf("no facts: %+v", s)
	}
	f := &pci.Function{BDF: pci.BDF{Bus: 1}}
	s := ScanOf([]*target.Facts{{Function: f}, {Function: &pci.Function{BDF: pci.BDF{Bus: 2}}}})
	if len(s.Functions) != 2 || s.Functions[0].BDF != "0000:01:00.0" || s.Functions[1].BDF != "0000:02:00.0" {
		t.Errorf("two facts: %+v", s)
	}
}
