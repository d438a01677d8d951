//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// run runs vfio-gate with args and returns stdout, stderr and the exit code
// (-1 if it could not be started or was killed).
func (h *Harness) run(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, h.VfioGate, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			e.WriteString(err.Error())
		}
	}
	return o.String(), e.String(), code
}

// has reports whether vfio-gate has the (sub)command path, e.g. "log",
// "verify": its --help must succeed and show that exact usage line (cobra
// prints the parent's help, with exit 0, for an unknown child).
func (h *Harness) has(ctx context.Context, path ...string) bool {
	out, _, code := h.run(ctx, append(path, "--help")...)
	return code == 0 && strings.Contains(out, "Usage:\n  vfio-gate "+strings.Join(path, " "))
}

// need returns the SKIP of the first missing command, or nil.
func (h *Harness) need(ctx context.Context, cmds ...string) *Result {
	for _, c := range cmds {
		if !h.has(ctx, strings.Fields(c)...) {
			r := notYet(c)
			return &r
		}
	}
	return nil
}

// scanEntry is the part of `scan --json` (issue 2) these scenarios check.
type scanEntry struct {
	BDF        string          `json:"bdf"`
	VendorID   string          `json:"vendor_id"`
	DeviceID   string          `json:"device_id"`
	Driver     *string         `json:"driver"`
	IOMMUGroup json.RawMessage `json:"iommu_group"`
	DOE        []struct {
		Offset   string   `json:"offset"`
		Features []string `json:"features"`
		Skipped  string   `json:"skipped"`
	} `json:"doe"`
	Errors []string `json:"errors"`
	Raw    json.RawMessage
}

func (h *Harness) scan(ctx context.Context, args ...string) ([]scanEntry, string, error) {
	out, errOut, code := h.run(ctx, append([]string{"scan", "--json"}, args...)...)
	if code != 0 {
		return nil, out, fmt.Errorf("vfio-gate scan --json %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	var doc struct {
		Schema    string            `json:"schema"`
		Functions []json.RawMessage `json:"functions"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Schema != "vfio-gate/scan/v1" {
		return nil, out, fmt.Errorf("scan --json output is not a vfio-gate/scan/v1 object: %v", err)
	}
	raws := doc.Functions
	entries := make([]scanEntry, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &entries[i]); err != nil {
			return nil, out, fmt.Errorf("scan --json entry %d: %w", i, err)
		}
		entries[i].Raw = r
	}
	return entries, out, nil
}

func parseHex(s string) (uint64, error) {
	return strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
}

// scanCXL runs scan --json and returns the CXL function's entry after checking
// its identity and its DOE capability offset against sysfs.
func (h *Harness) scanCXL(ctx context.Context) (*scanEntry, *pciFunc, Result, bool) {
	f, off, err := h.cxlDOE()
	if err != nil {
		return nil, nil, failf("%v", err), false
	}
	entries, _, err := h.scan(ctx)
	if err != nil {
		return nil, nil, failf("%v", err), false
	}
	var e *scanEntry
	for i := range entries {
		if entries[i].BDF == f.BDF {
			e = &entries[i]
		}
	}
	if e == nil {
		return nil, nil, failf("scan --json has no entry for %s (%d entries)", f.BDF, len(entries)), false
	}
	v, err1 := parseHex(e.VendorID)
	d, err2 := parseHex(e.DeviceID)
	if err1 != nil || err2 != nil || v != f.Vendor || d != f.Device {
		return nil, nil, failf("%s: scan says %s:%s, sysfs %04x:%04x", f.BDF, e.VendorID, e.DeviceID, f.Vendor, f.Device), false
	}
	if len(e.DOE) != 1 {
		return nil, nil, failf("%s: scan lists %d DOE mailboxes, want 1: %s", f.BDF, len(e.DOE), e.Raw), false
	}
	if o, err := parseHex(e.DOE[0].Offset); err != nil || int(o) != off {
		return nil, nil, failf("%s: scan DOE offset %q, config space has it at 0x%x", f.BDF, e.DOE[0].Offset, off), false
	}
	return e, f, Result{}, true
}

// scanCXLUnbound is scanCXL after unbinding the CXL function's driver (and
// after checking that the scan command exists).
func (h *Harness) scanCXLUnbound(ctx context.Context) (*scanEntry, *pciFunc, Result, bool) {
	if r := h.need(ctx, "scan"); r != nil {
		return nil, nil, *r, false
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return nil, nil, failf("%v", err), false
	}
	if err := h.unbind(ctx, f.BDF); err != nil {
		return nil, nil, failf("%v", err), false
	}
	return h.scanCXL(ctx)
}

// scanBound (issue 8 scenario 1, first half): while cxl_pci is bound,
// `scan --json` lists the CXL function's DOE capability but does not touch
// the mailbox: no features, and a reason that names the driver.
func scanBound(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "scan"); r != nil {
		return *r
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, f.BDF, "cxl_pci", 10*time.Second); err != nil {
		return failf("%v", err)
	}
	e, _, r, ok := h.scanCXL(ctx)
	if !ok {
		return r
	}
	if e.Driver == nil || *e.Driver != "cxl_pci" {
		return failf("%s: scan driver %v, want cxl_pci", f.BDF, e.Driver)
	}
	if n := len(e.DOE[0].Features); n != 0 {
		return failf("%s: scan ran discovery while cxl_pci is bound: features %v", f.BDF, e.DOE[0].Features)
	}
	if !strings.Contains(e.DOE[0].Skipped, "cxl_pci") {
		return failf("%s: discovery skipped without a reason naming the driver: %s", f.BDF, e.Raw)
	}
	return passf("%s: DOE at %s listed, discovery skipped: %s", f.BDF, e.DOE[0].Offset, e.DOE[0].Skipped)
}

// scanUnbound (issue 8 scenario 1, second half): with no driver bound, scan
// runs discovery and lists discovery and cxl-cdat.
func scanUnbound(ctx context.Context, h *Harness) Result {
	e, f, r, ok := h.scanCXLUnbound(ctx)
	if !ok {
		return r
	}
	if e.Driver != nil {
		return failf("%s: scan says driver %q, want null", f.BDF, *e.Driver)
	}
	if e.DOE[0].Skipped != "" {
		return failf("%s: discovery skipped with no driver bound: %s", f.BDF, e.DOE[0].Skipped)
	}
	feats := e.DOE[0].Features
	for _, w := range []string{"discovery", "cxl-cdat"} {
		if !slices.Contains(feats, w) {
			return failf("%s: scan features %v, missing %q: %s", f.BDF, feats, w, e.Raw)
		}
	}
	return passf("%s (no driver): DOE at %s features %v", f.BDF, e.DOE[0].Offset, feats)
}

// scanLockdown (lockdown boot, issue 8 scenario 7): with the CXL function
// unbound, scan lists its DOE mailbox and says raw DOE is impossible because
// of kernel lockdown. Runs after kernel-lockdown, which unbinds cxl_pci.
func scanLockdown(ctx context.Context, h *Harness) Result {
	e, f, r, ok := h.scanCXLUnbound(ctx)
	if !ok {
		return r
	}
	if len(e.DOE[0].Features) != 0 || !strings.Contains(e.DOE[0].Skipped, "lockdown") {
		return failf("%s: under lockdown scan says features %v, skipped %q; want none and a lockdown reason", f.BDF, e.DOE[0].Features, e.DOE[0].Skipped)
	}
	return passf("%s: DOE at %s, discovery skipped: %s", f.BDF, e.DOE[0].Offset, e.DOE[0].Skipped)
}

// doeBoundRefused (issue 8 scenario 1): while cxl_pci is bound, `vfio-gate
// doe cdat` refuses to touch the mailbox: exit 4 and a reason naming the
// driver.
func doeBoundRefused(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "doe cdat"); r != nil {
		return *r
	}
	f, _, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, f.BDF, "cxl_pci", 10*time.Second); err != nil {
		return failf("%v", err)
	}
	out, errOut, code := h.run(ctx, "doe", "cdat", f.BDF)
	if code != 4 || !strings.Contains(errOut+out, "cxl_pci") {
		return failf("doe cdat %s with cxl_pci bound: exit %d, %q %q; want exit 4 naming cxl_pci", f.BDF, code, out, errOut)
	}
	return passf("%s: doe cdat refused while cxl_pci is bound (exit 4): %s", f.BDF, firstLine(errOut))
}

// cdatJSON is the part of `doe cdat --json` this checks.
type cdatJSON struct {
	Mailbox    string `json:"mailbox"` // "0x0150" (docs/json.md)
	Length     uint32 `json:"length"`
	ChecksumOK bool   `json:"checksum_ok"`
	Structures []struct {
		Type   uint8  `json:"type"`
		Length uint16 `json:"length"`
	} `json:"structures"`
	Raw string `json:"raw"`
}

// doeCDATCLI (issue 8 scenario 2): `vfio-gate doe cdat --json` of the unbound
// CXL function reads the table through the real sysfs config file; header,
// checksum and structures must match what the raw kernel-doe-cdat read found,
// byte for byte.
func doeCDATCLI(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "doe cdat"); r != nil {
		return *r
	}
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if err := h.unbind(ctx, f.BDF); err != nil {
		return failf("%v", err)
	}
	out, errOut, code := h.run(ctx, "doe", "cdat", "--json", f.BDF)
	if code != 0 {
		return failf("doe cdat --json %s: exit %d: %s %s", f.BDF, code, out, errOut)
	}
	var c cdatJSON
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return failf("doe cdat --json output: %v: %q", err, out)
	}
	raw, err := hex.DecodeString(c.Raw)
	if err != nil {
		return failf("doe cdat raw: %v", err)
	}
	t, err := checkCDAT(raw)
	if err != nil {
		return failf("the table vfio-gate returned does not check: %v", err)
	}
	if mb, err := parseHex(c.Mailbox); err != nil || int(mb) != off || c.Length != t.Length || !c.ChecksumOK || len(c.Structures) != len(t.Entries) {
		return failf("doe cdat says mailbox %s, length %d, checksum_ok %v, %d structures; config space and the table say 0x%x, %d, true, %d",
			c.Mailbox, c.Length, c.ChecksumOK, len(c.Structures), off, t.Length, len(t.Entries))
	}
	if h.rawCDAT != nil && !bytes.Equal(raw, h.rawCDAT) {
		return failf("doe cdat table (%d bytes) differs from the raw read (%d bytes)", len(raw), len(h.rawCDAT))
	}
	return passf("%s: vfio-gate doe cdat: %d bytes, %d structures, checksum ok, equals the raw read: %v", f.BDF, c.Length, len(c.Structures), h.rawCDAT != nil)
}
