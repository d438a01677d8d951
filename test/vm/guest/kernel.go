//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
	"golang.org/x/sys/unix"
)

// Scenarios that prove, with the kernel alone, the paths vfio-gate relies on.

// cxlDOE finds the CXL type-3 function and its DOE capability offset, read
// from the real sysfs config file.
func (h *Harness) cxlDOE() (*pciFunc, int, error) {
	f, err := h.findOne("CXL type-3 memory device (class 0x050210)", isCXLMem)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := openConfig(h.devPath(f.BDF, "config"), false)
	if err != nil {
		return f, 0, err
	}
	defer cfg.Close()
	img, err := cfg.readAll()
	if err != nil {
		return f, 0, err
	}
	caps, err := extCaps(img)
	if err != nil {
		return f, 0, err
	}
	offs := caps[extCapIDDOE]
	if len(offs) == 0 {
		ids := make([]string, 0, len(caps))
		for id := range caps {
			ids = append(ids, fmt.Sprintf("0x%04x", id))
		}
		slices.Sort(ids)
		return f, 0, fmt.Errorf("%s: no DOE extended capability (0x2E); found %s", f.BDF, strings.Join(ids, " "))
	}
	return f, offs[0], nil
}

// kernelCXLDOECap: the CXL type-3 function is present, its config space has a
// DOE extended capability, and cxl_pci is bound (it read CDAT through that
// mailbox at probe).
func kernelCXLDOECap(ctx context.Context, h *Harness) Result {
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, f.BDF, "cxl_pci", 10*time.Second); err != nil {
		return failf("%v", err)
	}
	return passf("%s %04x:%04x class 0x%06x: DOE capability at 0x%x, driver cxl_pci", f.BDF, f.Vendor, f.Device, f.Class, off)
}

// kernelDOEDiscovery: after unbinding cxl_pci, a DOE discovery exchange by
// raw aligned 4-byte pread/pwrite on the sysfs config file lists discovery
// and CXL Table Access (CDAT). Leaves the CXL function without a driver.
func kernelDOEDiscovery(ctx context.Context, h *Harness) Result {
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if err := h.unbind(ctx, f.BDF); err != nil {
		return failf("%v", err)
	}
	cfg, err := openConfig(h.devPath(f.BDF, "config"), true)
	if err != nil {
		return failf("%v", err)
	}
	defer cfg.Close()
	mb := &rawMailbox{cfg: cfg, off: off}
	feats, err := mb.discover(ctx)
	if err != nil {
		return failf("%s: %v", f.BDF, err)
	}
	want := []Feature{{doeVendorPCISIG, doeTypeDiscovery}, {doeVendorCXL, doeTypeCXLCDAT}}
	for _, w := range want {
		if !slices.Contains(feats, w) {
			return failf("%s: discovery lists %v, missing %v", f.BDF, feats, w)
		}
	}
	return passf("%s mailbox 0x%x (no driver bound): features %v", f.BDF, off, feats)
}

// kernelDOECDAT: the CDAT table read through the same raw mailbox has a
// header whose length matches and whose checksum is 0.
func kernelDOECDAT(ctx context.Context, h *Harness) Result {
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	if f.Driver != "" {
		return failf("%s: driver %s is bound; the discovery scenario should have unbound it", f.BDF, f.Driver)
	}
	cfg, err := openConfig(h.devPath(f.BDF, "config"), true)
	if err != nil {
		return failf("%v", err)
	}
	defer cfg.Close()
	raw, err := (&rawMailbox{cfg: cfg, off: off}).readCDAT(ctx)
	if err != nil {
		return failf("%s: %v", f.BDF, err)
	}
	t, err := checkCDAT(raw)
	if err != nil {
		return failf("%s: %v", f.BDF, err)
	}
	if len(t.Entries) == 0 {
		return failf("%s: CDAT has no structures", f.BDF)
	}
	h.rawCDAT = raw
	types := make([]string, len(t.Entries))
	for i, e := range t.Entries {
		types[i] = fmt.Sprint(e.Type)
	}
	return passf("%s CDAT: %d bytes, revision %d, checksum ok, %d structures (types %s)", f.BDF, t.Length, t.Revision, len(t.Entries), strings.Join(types, ","))
}

// kernelIOMMUGroups: the plain endpoint has an IOMMU group of its own (intel
// IOMMU in the guest), and the two functions of the multifunction edu device
// share one group (no ACS), the setup for "a group with a denied member".
func kernelIOMMUGroups(ctx context.Context, h *Harness) Result {
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return failf("%v", err)
	}
	if nic.IOMMUGroup == "" {
		return failf("%s has no iommu_group (is intel_iommu=on honoured?)", nic.BDF)
	}
	if !slices.Equal(nic.IOMMUGroupMember, []string{nic.BDF}) {
		return failf("%s: group %s has members %v, want only itself", nic.BDF, nic.IOMMUGroup, nic.IOMMUGroupMember)
	}
	edus, err := h.find(isEdu)
	if err != nil {
		return failf("%v", err)
	}
	if len(edus) != 2 {
		return failf("want 2 edu functions, found %d", len(edus))
	}
	if edus[0].IOMMUGroup == "" || edus[0].IOMMUGroup != edus[1].IOMMUGroup {
		return failf("edu functions %s and %s are in groups %q and %q, want one shared group", edus[0].BDF, edus[1].BDF, edus[0].IOMMUGroup, edus[1].IOMMUGroup)
	}
	return passf("%s in group %s alone; edu %s+%s share group %s", nic.BDF, nic.IOMMUGroup, edus[0].BDF, edus[1].BDF, edus[0].IOMMUGroup)
}

// kernelVFIOBind: binding the endpoint to vfio-pci through driver_override +
// drivers_probe works, /dev/vfio/N appears and the group is viable; clearing
// the override and probing again gives it back to e1000e.
func kernelVFIOBind(ctx context.Context, h *Harness) Result {
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 10*time.Second); err != nil {
		return failf("%v", err)
	}
	if err := h.bindOverride(ctx, nic.BDF, "vfio-pci"); err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "vfio-pci", 5*time.Second); err != nil {
		return failf("%v", err)
	}
	dev := filepath.Join(h.Dev, "vfio", nic.IOMMUGroup)
	if err := waitPath(ctx, dev, 5*time.Second); err != nil {
		return failf("%v", err)
	}
	api, err := vfioAPI(filepath.Join(h.Dev, "vfio/vfio"))
	if err != nil {
		return failf("%v", err)
	}
	if api != vfioAPIVersion {
		return failf("VFIO API version %d, want %d", api, vfioAPIVersion)
	}
	flags, err := vfioGroupFlags(dev)
	if err != nil {
		return failf("%v", err)
	}
	if flags&vfioGroupFlagViable == 0 {
		return failf("%s: group flags 0x%x, not viable", dev, flags)
	}
	// Give it back, the way release will.
	if err := h.bindOverride(ctx, nic.BDF, ""); err != nil {
		return failf("restore: %v", err)
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 10*time.Second); err != nil {
		return failf("restore: %v", err)
	}
	if ov, _ := readTrim(h.devPath(nic.BDF, "driver_override")); ov != "(null)" {
		return failf("restore: driver_override is %q, want (null)", ov)
	}
	return passf("%s: e1000e -> vfio-pci (%s viable, API %d) -> e1000e", nic.BDF, dev, api)
}

// kernelTPM: /dev/tpmrm0 (tpm_crb -> QEMU -> swtpm) answers TPM2 commands sent
// with blocking syscalls: repeated GetRandom, and a PCR 16 extend whose new
// value read back equals SHA-256(old || digest).
func kernelTPM(ctx context.Context, h *Harness) Result {
	drv, err := os.Readlink(filepath.Join(h.Sys, "class/tpm/tpm0/device/driver"))
	if err != nil {
		return failf("no TPM device: %v", err)
	}
	if filepath.Base(drv) != "tpm_crb" {
		return failf("tpm0 driver is %s, want tpm_crb", filepath.Base(drv))
	}
	tpm, err := openTPM(filepath.Join(h.Dev, "tpmrm0"))
	if err != nil {
		return failf("%v", err)
	}
	defer tpm.Close()
	const rounds = 32
	seen := map[string]bool{}
	for i := range rounds {
		rsp, err := tpm2.GetRandom{BytesRequested: 16}.Execute(tpm)
		if err != nil {
			return failf("GetRandom %d/%d: %v", i+1, rounds, err)
		}
		if len(rsp.RandomBytes.Buffer) != 16 {
			return failf("GetRandom %d: %d bytes, want 16", i+1, len(rsp.RandomBytes.Buffer))
		}
		seen[string(rsp.RandomBytes.Buffer)] = true
	}
	if len(seen) != rounds {
		return failf("GetRandom returned %d distinct values in %d calls", len(seen), rounds)
	}
	const pcr = 16
	read := func() ([]byte, error) {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
			{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(pcr)},
		}}}.Execute(tpm)
		if err != nil {
			return nil, err
		}
		if len(rsp.PCRValues.Digests) != 1 {
			return nil, fmt.Errorf("PCR_Read returned %d digests, want 1", len(rsp.PCRValues.Digests))
		}
		return rsp.PCRValues.Digests[0].Buffer, nil
	}
	before, err := read()
	if err != nil {
		return failf("PCR_Read: %v", err)
	}
	var d [32]byte
	if _, err := rand.Read(d[:]); err != nil {
		return failf("%v", err)
	}
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(tpm)
	if err != nil {
		return failf("PCR_Extend: %v", err)
	}
	after, err := read()
	if err != nil {
		return failf("PCR_Read after extend: %v", err)
	}
	want := sha256.Sum256(append(slices.Clone(before), d[:]...))
	if !bytes.Equal(after, want[:]) {
		return failf("PCR %d after extend is %x, want %x", pcr, after, want)
	}
	return passf("tpm_crb /dev/tpmrm0: %d GetRandom ok, PCR %d extend replayed (%x...)", rounds, pcr, after[:4])
}

// lockdownState returns the active mode from securityfs, e.g. "integrity".
func (h *Harness) lockdownState() (string, error) {
	s, err := readTrim(filepath.Join(h.Sys, "kernel/security/lockdown"))
	if err != nil {
		return "", err
	}
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return "", fmt.Errorf("lockdown file %q has no [active] mode", s)
	}
	return s[i+1 : j], nil
}

// kernelLockdown (lockdown boot): the kernel honours lockdown=integrity, and a
// config-space write through sysfs is refused while reads still work. The
// write is to the CXL function's DOE Control register with value 0 (no Go, no
// Abort), so even if it were let through it would change nothing.
func kernelLockdown(ctx context.Context, h *Harness) Result {
	mode, err := h.lockdownState()
	if err != nil {
		return failf("%v", err)
	}
	if mode != "integrity" {
		return failf("lockdown is %q, want integrity (kernel ignored lockdown=integrity?)", mode)
	}
	f, off, err := h.cxlDOE()
	if err != nil {
		return failf("config read under lockdown: %v", err)
	}
	if err := h.unbind(ctx, f.BDF); err != nil {
		return failf("%v", err)
	}
	cfg, err := openConfig(h.devPath(f.BDF, "config"), true)
	if err != nil {
		return failf("%v", err)
	}
	defer cfg.Close()
	err = cfg.write32(off+doeCtrl, 0)
	if err == nil {
		return failf("config write at 0x%x succeeded under lockdown=integrity", off+doeCtrl)
	}
	if !errors.Is(err, unix.EPERM) {
		return failf("config write under lockdown: %v, want EPERM", err)
	}
	return passf("lockdown=%s: %s config read ok, write refused (%v)", mode, f.BDF, unix.EPERM)
}
