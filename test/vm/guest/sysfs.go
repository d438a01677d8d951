//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// QEMU's device identities in the guest (hw/mem/cxl_type3.c, hw/net/e1000e.c,
// hw/misc/edu.c).
const (
	classCXLMem = 0x050210 // memory controller, CXL memory device, CXL 2.0 prog-if
	vendorIntel = 0x8086
	deviceE1000 = 0x10d3 // e1000e (82574L)
	vendorEdu   = 0x1234
	deviceEdu   = 0x11e8
)

func (h *Harness) devPath(bdf string, name ...string) string {
	return filepath.Join(append([]string{h.Sys, "bus/pci/devices", bdf}, name...)...)
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func readHex(path string) (uint64, error) {
	s, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
}

// writeSysfs writes v with a single write(2), as sysfs attributes expect.
func writeSysfs(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(v))
	return errors.Join(werr, f.Close())
}

// pciFunc is the sysfs view of one function.
type pciFunc struct {
	BDF              string
	Vendor, Device   uint64
	Class            uint64
	Driver           string // "" when none
	IOMMUGroup       string // "" when none
	IOMMUGroupMember []string
}

func (h *Harness) function(bdf string) (*pciFunc, error) {
	f := &pciFunc{BDF: bdf}
	var err error
	if f.Vendor, err = readHex(h.devPath(bdf, "vendor")); err != nil {
		return nil, err
	}
	if f.Device, err = readHex(h.devPath(bdf, "device")); err != nil {
		return nil, err
	}
	if f.Class, err = readHex(h.devPath(bdf, "class")); err != nil {
		return nil, err
	}
	if l, err := os.Readlink(h.devPath(bdf, "driver")); err == nil {
		f.Driver = filepath.Base(l)
	}
	if l, err := os.Readlink(h.devPath(bdf, "iommu_group")); err == nil {
		f.IOMMUGroup = filepath.Base(l)
		ents, err := os.ReadDir(filepath.Join(h.Sys, "kernel/iommu_groups", f.IOMMUGroup, "devices"))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			f.IOMMUGroupMember = append(f.IOMMUGroupMember, e.Name())
		}
		sort.Strings(f.IOMMUGroupMember)
	}
	return f, nil
}

// functions lists every PCI function, sorted by BDF.
func (h *Harness) functions() ([]*pciFunc, error) {
	ents, err := os.ReadDir(filepath.Join(h.Sys, "bus/pci/devices"))
	if err != nil {
		return nil, err
	}
	var out []*pciFunc
	for _, e := range ents {
		f, err := h.function(e.Name())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, f)
	}
	return out, nil
}

// find returns the functions that match.
func (h *Harness) find(match func(*pciFunc) bool) ([]*pciFunc, error) {
	all, err := h.functions()
	if err != nil {
		return nil, err
	}
	var out []*pciFunc
	for _, f := range all {
		if match(f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// findOne returns the single function that matches, or an error naming what.
func (h *Harness) findOne(what string, match func(*pciFunc) bool) (*pciFunc, error) {
	fs, err := h.find(match)
	if err != nil {
		return nil, err
	}
	if len(fs) != 1 {
		return nil, fmt.Errorf("want exactly one %s, found %d", what, len(fs))
	}
	return fs[0], nil
}

func isCXLMem(f *pciFunc) bool { return f.Class == classCXLMem }
func isNIC(f *pciFunc) bool    { return f.Vendor == vendorIntel && f.Device == deviceE1000 }
func isEdu(f *pciFunc) bool    { return f.Vendor == vendorEdu && f.Device == deviceEdu }

// waitDriver polls until the function's bound driver is want ("" = none).
func (h *Harness) waitDriver(ctx context.Context, bdf, want string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		got := ""
		if l, err := os.Readlink(h.devPath(bdf, "driver")); err == nil {
			got = filepath.Base(l)
		}
		if got == want {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%s: driver is %q, want %q after %v", bdf, got, want, limit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitPath polls until path exists.
func waitPath(ctx context.Context, path string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear within %v", path, limit)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// unbind detaches bdf from its driver, if any.
func (h *Harness) unbind(ctx context.Context, bdf string) error {
	l, err := os.Readlink(h.devPath(bdf, "driver"))
	if err != nil {
		return nil // no driver
	}
	drv := filepath.Base(l)
	if err := writeSysfs(filepath.Join(h.Sys, "bus/pci/drivers", drv, "unbind"), bdf); err != nil {
		return fmt.Errorf("unbind %s from %s: %w", bdf, drv, err)
	}
	_, err = h.waitDriver(ctx, bdf, "", 5*time.Second)
	return err
}

// bindOverride binds bdf to drv the way vfio/ does: driver_override, then
// drivers_probe (never new_id). drv "" clears the override and lets the
// kernel pick the default driver.
func (h *Harness) bindOverride(ctx context.Context, bdf, drv string) error {
	if err := h.unbind(ctx, bdf); err != nil {
		return err
	}
	ov := drv
	if ov == "" {
		ov = "\n"
	}
	if err := writeSysfs(h.devPath(bdf, "driver_override"), ov); err != nil {
		return fmt.Errorf("driver_override %q: %w", drv, err)
	}
	if err := writeSysfs(filepath.Join(h.Sys, "bus/pci/drivers_probe"), bdf); err != nil {
		return fmt.Errorf("drivers_probe %s: %w", bdf, err)
	}
	return nil
}
