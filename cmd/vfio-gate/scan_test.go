package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vfio-gate/vfio-gate/doe"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// runCLIWith runs the CLI in-process with config spaces served by opener.
func runCLIWith(t *testing.T, opener func(pci.BDF) (pci.ConfigSpace, io.Closer, error), args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	e := &env{in: strings.NewReader(""), out: &out, errw: &errw, getenv: func(string) string { return "" }, configOpener: opener}
	code := execute(context.Background(), e, args)
	checkJSONOut(t, args, out.String())
	return code, out.String(), errw.String()
}

// jsonEntry decodes scan --json with the contract's types: every key the
// issue names must be present with the right JSON type.
type jsonEntry struct {
	BDF        string          `json:"bdf"`
	VendorID   string          `json:"vendor_id"`
	DeviceID   string          `json:"device_id"`
	Class      string          `json:"class"`
	Driver     *string         `json:"driver"`
	IOMMUGroup *int            `json:"iommu_group"`
	DOE        []rpt.ScanDOE   `json:"doe"`
	Errors     []string        `json:"errors"`
	DSN        *string         `json:"dsn"`
	Raw        json.RawMessage `json:"-"`
}

func decodeScan(t *testing.T, out string) map[string]jsonEntry {
	t.Helper()
	var doc struct {
		Schema    string                       `json:"schema"`
		Functions []map[string]json.RawMessage `json:"functions"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Schema != "vfio-gate/scan/v1" || doc.Functions == nil {
		t.Fatalf("scan --json is not a vfio-gate/scan/v1 object with functions: %v\n%s", err, out)
	}
	raw := doc.Functions
	var ents struct {
		Functions []jsonEntry `json:"functions"`
	}
	if err := json.Unmarshal([]byte(out), &ents); err != nil {
		t.Fatal(err)
	}
	m := map[string]jsonEntry{}
	for i, r := range raw {
		for _, k := range []string{"bdf", "vendor_id", "device_id", "class", "driver", "iommu_group", "doe", "errors"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("entry %d lacks key %q", i, k)
			}
		}
		if string(r["doe"]) == "null" || string(r["errors"]) == "null" {
			t.Fatalf("entry %d: doe/errors must be arrays, got %s / %s", i, r["doe"], r["errors"])
		}
		m[ents.Functions[i].BDF] = ents.Functions[i]
	}
	return m
}

// TestScanRealSysfs compares scan --json of this machine with values read
// independently from /sys. --no-doe keeps it read-only.
func TestScanRealSysfs(t *testing.T) {
	ents, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil || len(ents) == 0 {
		t.Skipf("no PCI functions in /sys: %v", err)
	}
	code, out, errs := runCLI(t, "scan", "--json", "--no-doe")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := decodeScan(t, out)
	if len(got) != len(ents) {
		t.Fatalf("scan lists %d functions, /sys has %d", len(got), len(ents))
	}
	for _, de := range ents {
		dir := filepath.Join("/sys/bus/pci/devices", de.Name())
		read := func(a string) string {
			b, err := os.ReadFile(filepath.Join(dir, a))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		e, ok := got[de.Name()]
		if !ok {
			t.Fatalf("%s missing from scan", de.Name())
		}
		if e.VendorID != read("vendor") || e.DeviceID != read("device") || e.Class != read("class") {
			t.Errorf("%s: scan %s %s %s, sysfs %s %s %s", de.Name(), e.VendorID, e.DeviceID, e.Class, read("vendor"), read("device"), read("class"))
		}
		var drv *string
		if l, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
			s := filepath.Base(l)
			drv = &s
		}
		if !cmp.Equal(drv, e.Driver) {
			t.Errorf("%s: driver %v, sysfs %v", de.Name(), e.Driver, drv)
		}
		var grp *int
		if l, err := os.Readlink(filepath.Join(dir, "iommu_group")); err == nil {
			var n int
			fmt.Sscan(filepath.Base(l), &n)
			grp = &n
		}
		if !cmp.Equal(grp, e.IOMMUGroup) {
			t.Errorf("%s: iommu_group %v, sysfs %v", de.Name(), e.IOMMUGroup, grp)
		}
		for _, d := range e.DOE {
			if d.Skipped == "" || len(d.Features) != 0 {
				t.Errorf("%s: --no-doe ran discovery: %+v", de.Name(), d)
			}
		}
	}
	// The human table names every function too.
	code, out, _ = runCLI(t, "scan", "--no-doe")
	for _, de := range ents {
		if code != 0 || !strings.Contains(out, de.Name()) {
			t.Errorf("table (exit %d) lacks %s:\n%s", code, de.Name(), out)
		}
	}
}

// doeFixture is a sysfs tree with software DOE devices whose live config
// spaces are served through the opener.
type doeFixture struct {
	tree    *sysfstest.Tree
	configs map[string]pci.ConfigSpace
	models  map[string]*doe.Model
}

func (f *doeFixture) opener(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
	if c, ok := f.configs[b.String()]; ok {
		return c, io.NopCloser(nil), nil
	}
	file, err := os.OpenFile(filepath.Join(f.tree.Dir, sysfstest.DevicePath(b.String()), "config"), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	return file, file, nil
}

func newDOEFixture(t *testing.T) *doeFixture {
	t.Helper()
	tr, err := sysfstest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fx := &doeFixture{tree: tr, configs: map[string]pci.ConfigSpace{}, models: map[string]*doe.Model{}}
	add := func(bdf, driver string, group int, feats ...[]doe.Feature) {
		var ms []*doe.Model
		for i, fs := range feats {
			m := doe.NewModel(fs, nil)
			fx.models[fmt.Sprintf("%s/%d", bdf, i)] = m
			ms = append(ms, m)
		}
		if err := tr.Add(sysfstest.Function{BDF: bdf, Vendor: doetest.VendorID, Device: doetest.DeviceID, Class: doetest.Class,
			Driver: driver, IOMMUGroup: group}); err != nil {
			t.Fatal(err)
		}
		if len(ms) > 0 {
			fx.configs[bdf] = doetest.NewConfig(ms...)
		}
	}
	// Two mailboxes, no driver: discovery runs on both.
	add("0000:0d:00.0", "", 5, []doe.Feature{doe.FeatureCMA, doe.FeatureSecuredCMA}, []doe.Feature{doe.FeatureCXLCDAT, {Vendor: 0x1234, Type: 0x56}})
	// Owned by a kernel driver: listed, skipped.
	add("0000:0e:00.0", "cxl_pci", 6, []doe.Feature{doe.FeatureCXLCDAT})
	// vfio-pci bound: allowed.
	add("0000:0f:00.0", "vfio-pci", 7, []doe.Feature{doe.FeatureCMA})
	// No DOE at all (sysfs file).
	add("0000:10:00.0", "", -1)
	// A Device Serial Number after the mailboxes of 0000:0d:00.0.
	fx.configs["0000:0d:00.0"].(*doetest.Config).AddExtCap(pci.ExtCapIDDSN, 1, binary.LittleEndian.AppendUint64(nil, 0x0011223344556677))
	return fx
}

func TestScanEmulatedDOE(t *testing.T) {
	fx := newDOEFixture(t)
	locks := t.TempDir()
	code, out, errs := runCLIWith(t, fx.opener, "scan", "--json", "--sysfs-root", fx.tree.Dir, "--lock-dir", locks)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := decodeScan(t, out)
	grp5, grp7 := 5, 7
	str := func(s string) *string { return &s }
	want := map[string]jsonEntry{
		"0000:0d:00.0": {BDF: "0000:0d:00.0", VendorID: "0x1b36", DeviceID: "0x0010", Class: "0x010802", IOMMUGroup: &grp5,
			DOE: []rpt.ScanDOE{
				{Offset: "0x0100", Features: []string{"discovery", "cma-spdm", "secured-cma-spdm"}},
				{Offset: "0x0118", Features: []string{"discovery", "cxl-cdat", "1234:56"}},
			}, Errors: []string{}, DSN: str("0x0011223344556677")},
		"0000:0f:00.0": {BDF: "0000:0f:00.0", VendorID: "0x1b36", DeviceID: "0x0010", Class: "0x010802", Driver: str("vfio-pci"), IOMMUGroup: &grp7,
			DOE: []rpt.ScanDOE{{Offset: "0x0100", Features: []string{"discovery", "cma-spdm"}}}, Errors: []string{}},
		"0000:10:00.0": {BDF: "0000:10:00.0", VendorID: "0x1b36", DeviceID: "0x0010", Class: "0x010802", DOE: []rpt.ScanDOE{}, Errors: []string{}},
	}
	for bdf, w := range want {
		if d := cmp.Diff(w, got[bdf]); d != "" {
			t.Errorf("%s (-want +got):\n%s", bdf, d)
		}
	}
	skipped := got["0000:0e:00.0"]
	reason := "kernel driver cxl_pci owns the mailbox; unbind it first"
	if len(skipped.DOE) != 1 || skipped.DOE[0].Skipped != reason || len(skipped.DOE[0].Features) != 0 ||
		!slices.Contains(skipped.Errors, "discovery skipped: "+reason) {
		t.Errorf("cxl_pci function: %+v", skipped)
	}
	if st := fx.models["0000:0e:00.0/0"].Stats(); st.Reads+st.Writes != 0 {
		t.Errorf("the skipped mailbox was touched: %+v", st)
	}
	if len(got) != 4 {
		t.Errorf("%d entries, want 4", len(got))
	}

	// The table shows the same.
	code, out, _ = runCLIWith(t, fx.opener, "scan", "--sysfs-root", fx.tree.Dir, "--lock-dir", locks)
	for _, s := range []string{"0x0100: discovery,cma-spdm,secured-cma-spdm", "0x0118: discovery,cxl-cdat,1234:56",
		"cxl_pci", "0000:0e:00.0: discovery skipped: " + reason} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("table (exit %d) lacks %q:\n%s", code, s, out)
		}
	}
}

func TestScanBlockers(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(fx *doeFixture) error
		reason string
	}{
		{"lockdown", func(fx *doeFixture) error { return fx.tree.Lockdown("integrity") }, `kernel lockdown is "integrity"`},
		{"tsm", func(fx *doeFixture) error { return fx.tree.Attr("0000:0d:00.0", "tsm/connect", "tsm0\n") }, `TSM "tsm0" is connected`},
		{"no-doe", func(fx *doeFixture) error { return nil }, "--no-doe"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newDOEFixture(t)
			if err := c.setup(fx); err != nil {
				t.Fatal(err)
			}
			args := []string{"scan", "--json", "--sysfs-root", fx.tree.Dir, "--lock-dir", t.TempDir(), "0000:0d:00.0"}
			if c.name == "no-doe" {
				args = append(args, "--no-doe")
			}
			code, out, errs := runCLIWith(t, fx.opener, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			e := decodeScan(t, out)["0000:0d:00.0"]
			if len(e.DOE) != 2 || !strings.Contains(e.DOE[0].Skipped, c.reason) || len(e.Errors) != 1 ||
				!strings.HasPrefix(e.Errors[0], "discovery skipped: ") {
				t.Fatalf("entry %+v, want both mailboxes skipped with %q", e, c.reason)
			}
			if st := fx.models["0000:0d:00.0/0"].Stats(); st.Reads+st.Writes != 0 {
				t.Errorf("a blocked mailbox was touched: %+v", st)
			}
		})
	}
}

func TestScanFaultsAndLock(t *testing.T) {
	fx := newDOEFixture(t)
	fx.models["0000:0f:00.0/0"].SetFault(doe.Fault{StuckBusy: true})
	locks := t.TempDir()
	// Hold the lock of 0000:0d:00.0 as another vfio-gate would.
	unlock, err := pci.LockFunction(context.Background(), locks, pci.BDF{Bus: 0x0d})
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, out, errs := runCLIWith(t, fx.opener, "scan", "--json", "--sysfs-root", fx.tree.Dir, "--lock-dir", locks, "--timeout", "100ms",
		"0000:0d:00.0", "0000:0f:00.0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := decodeScan(t, out)
	locked := got["0000:0d:00.0"]
	if len(locked.DOE) != 2 || !strings.Contains(locked.DOE[0].Skipped, "lock") || len(locked.Errors) != 2 {
		t.Errorf("locked function: %+v", locked)
	}
	if st := fx.models["0000:0d:00.0/0"].Stats(); st.Reads+st.Writes != 0 {
		t.Errorf("mailbox touched without the lock: %+v", st)
	}
	busy := got["0000:0f:00.0"]
	if len(busy.DOE) != 1 || len(busy.DOE[0].Features) != 0 || len(busy.Errors) != 1 || !strings.Contains(busy.Errors[0], "busy") {
		t.Errorf("stuck-busy function: %+v", busy)
	}
}

func TestScanExitCodes(t *testing.T) {
	fx := newDOEFixture(t)
	base := []string{"scan", "--json", "--sysfs-root", fx.tree.Dir, "--lock-dir", t.TempDir()}
	code, out, errs := runCLIWith(t, fx.opener, append(base, "0000:10:00.0", "0000:99:00.0")...)
	if code != exitUnavailable || !strings.Contains(errs, "no such device: 0000:99:00.0") {
		t.Fatalf("missing BDF: exit %d, stderr %q", code, errs)
	}
	if e := decodeScan(t, out); len(e) != 1 || e["0000:10:00.0"].BDF == "" {
		t.Fatalf("existing function not listed next to the missing one: %s", out)
	}
	code, _, errs = runCLIWith(t, fx.opener, append(base, "0000:10:00")...)
	if code != exitInternal || !strings.Contains(errs, "malformed PCI address") {
		t.Fatalf("malformed BDF: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLIWith(t, fx.opener, "scan", "--sysfs-root", filepath.Join(fx.tree.Dir, "nope"))
	if code == 0 {
		t.Fatalf("missing sysfs root: exit 0 (%s)", errs)
	}
}

func TestExitCodeSentinels(t *testing.T) {
	for _, err := range []error{pci.ErrNoDevice, pci.ErrDeviceRemoved, pci.ErrLockdown, pci.ErrNeedCapSysAdmin} {
		if got := exitCode(fmt.Errorf("wrapped: %w", err)); got != exitUnavailable {
			t.Errorf("exitCode(%v) = %d, want %d", err, got, exitUnavailable)
		}
	}
	if got := exitCode(usageErrorf("scan: bad")); got != exitInternal {
		t.Errorf("usage error -> %d", got)
	}
}

// truncatedConfig is what sysfs gives an opener without CAP_SYS_ADMIN.
type truncatedConfig struct{ pci.ConfigSpace }

func (c truncatedConfig) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > 64 {
		return 0, fmt.Errorf("%w (test)", pci.ErrNeedCapSysAdmin)
	}
	return c.ConfigSpace.ReadAt(b, off)
}

func TestScanUnreadableConfig(t *testing.T) {
	fx := newDOEFixture(t)
	fx.configs["0000:0f:00.0"] = truncatedConfig{fx.configs["0000:0f:00.0"]}
	loop := doetest.NewConfig(doe.NewModel(nil, nil))
	loop.Poke(0x100, binary.LittleEndian.AppendUint32(nil, uint32(pci.ExtCapIDDOE)|1<<16|0x100<<20)) // points at itself
	fx.configs["0000:0d:00.0"] = loop
	code, out, errs := runCLIWith(t, fx.opener, "scan", "--json", "--sysfs-root", fx.tree.Dir, "--lock-dir", t.TempDir(),
		"0000:0d:00.0", "0000:0f:00.0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := decodeScan(t, out)
	tr := got["0000:0f:00.0"]
	if tr.VendorID != "0x1b36" || len(tr.DOE) != 0 || len(tr.Errors) != 1 ||
		!strings.Contains(tr.Errors[0], "config space beyond 64 bytes needs CAP_SYS_ADMIN") {
		t.Errorf("truncated config: %+v", tr)
	}
	lp := got["0000:0d:00.0"]
	if len(lp.Errors) == 0 || !strings.Contains(lp.Errors[0], "malformed capability list") {
		t.Errorf("looping capability list: %+v", lp)
	}
	// The mailbox found before the loop is still listed and discovered.
	if len(lp.DOE) != 1 || lp.DOE[0].Offset != "0x0100" || !slices.Equal(lp.DOE[0].Features, []string{"discovery"}) {
		t.Errorf("mailbox before the loop: %+v", lp.DOE)
	}
}
