package sysfstest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Tree is a sysfs tree rooted at Dir.
type Tree struct{ Dir string }

// New prepares the skeleton of a sysfs tree in dir (which must exist):
// bus/pci/{devices,drivers}, drivers_probe, kernel/iommu_groups and
// kernel/security/lockdown ("none").
func New(dir string) (*Tree, error) {
	t := &Tree{Dir: dir}
	for _, d := range []string{"bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups", "kernel/security", "devices/pci0000:00"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.write("bus/pci/drivers_probe", "", 0o200); err != nil {
		return nil, err
	}
	return t, t.Lockdown("none")
}

// Lockdown sets kernel/security/lockdown to show mode as the active one.
func (t *Tree) Lockdown(mode string) error {
	s := "none integrity confidentiality"
	switch mode {
	case "none":
		s = "[none] integrity confidentiality"
	case "integrity":
		s = "none [integrity] confidentiality"
	case "confidentiality":
		s = "none integrity [confidentiality]"
	default:
		return fmt.Errorf("sysfstest: unknown lockdown mode %q", mode)
	}
	return t.write("kernel/security/lockdown", s+"\n", 0o644)
}

// Function describes one PCI function to create.
type Function struct {
	BDF               string
	Vendor, Device    uint16
	SubVendor, SubDev uint16
	Class             uint32 // 24-bit class code
	Revision          uint8
	Driver            string // "" = no driver bound
	IOMMUGroup        int    // -1 = no IOMMU group
	// Config, if non-nil, is the content of the config file; otherwise a
	// 4 KiB type-0 header with the IDs above is written.
	Config []byte
}

// DevicePath returns the real (non-link) directory of a function, relative to the root.
func DevicePath(bdf string) string { return "devices/pci0000:00/" + bdf }

// Add creates the function: its directory with attribute files, the
// bus/pci/devices link, the driver link and the IOMMU group links.
func (t *Tree) Add(f Function) error {
	if _, err := pci.ParseBDF(f.BDF); err != nil {
		return err
	}
	dev := DevicePath(f.BDF)
	if err := os.MkdirAll(filepath.Join(t.Dir, dev), 0o755); err != nil {
		return err
	}
	attrs := map[string]string{
		"vendor":           fmt.Sprintf("0x%04x\n", f.Vendor),
		"device":           fmt.Sprintf("0x%04x\n", f.Device),
		"subsystem_vendor": fmt.Sprintf("0x%04x\n", f.SubVendor),
		"subsystem_device": fmt.Sprintf("0x%04x\n", f.SubDev),
		"class":            fmt.Sprintf("0x%06x\n", f.Class),
		"revision":         fmt.Sprintf("0x%02x\n", f.Revision),
		"driver_override":  "(null)\n",
	}
	for name, v := range attrs {
		if err := t.write(dev+"/"+name, v, 0o644); err != nil {
			return err
		}
	}
	cfg := f.Config
	if cfg == nil {
		cfg = Header(f)
	}
	if err := os.WriteFile(filepath.Join(t.Dir, dev, "config"), cfg, 0o644); err != nil {
		return err
	}
	if err := t.link("../../../"+dev, "bus/pci/devices/"+f.BDF); err != nil {
		return err
	}
	if f.Driver != "" {
		if err := t.Bind(f.BDF, f.Driver); err != nil {
			return err
		}
	}
	if f.IOMMUGroup >= 0 {
		g := fmt.Sprintf("kernel/iommu_groups/%d", f.IOMMUGroup)
		if err := os.MkdirAll(filepath.Join(t.Dir, g, "devices"), 0o755); err != nil {
			return err
		}
		if err := t.link("../../../"+g, dev+"/iommu_group"); err != nil {
			return err
		}
		if err := t.link("../../../../"+dev, g+"/devices/"+f.BDF); err != nil {
			return err
		}
	}
	return nil
}

// Driver creates an (empty) driver directory with bind/unbind/new_id files.
func (t *Tree) Driver(name string) error {
	d := "bus/pci/drivers/" + name
	if err := os.MkdirAll(filepath.Join(t.Dir, d), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"bind", "unbind", "new_id", "remove_id"} {
		if _, err := os.Stat(filepath.Join(t.Dir, d, f)); err == nil {
			continue
		}
		if err := t.write(d+"/"+f, "", 0o200); err != nil {
			return err
		}
	}
	return nil
}

// Bind links bdf to driver as the kernel would after a successful probe.
func (t *Tree) Bind(bdf, driver string) error {
	if err := t.Driver(driver); err != nil {
		return err
	}
	dev := DevicePath(bdf)
	_ = os.Remove(filepath.Join(t.Dir, dev, "driver"))
	if err := t.link("../../../bus/pci/drivers/"+driver, dev+"/driver"); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(t.Dir, "bus/pci/drivers", driver, bdf))
	return t.link("../../../../"+dev, "bus/pci/drivers/"+driver+"/"+bdf)
}

// Unbind removes the driver links of bdf.
func (t *Tree) Unbind(bdf string) error {
	dev := DevicePath(bdf)
	target, err := os.Readlink(filepath.Join(t.Dir, dev, "driver"))
	if err != nil {
		return nil
	}
	_ = os.Remove(filepath.Join(t.Dir, "bus/pci/drivers", filepath.Base(target), bdf))
	return os.Remove(filepath.Join(t.Dir, dev, "driver"))
}

// Remove deletes a function, as a hot-unplug would.
func (t *Tree) Remove(bdf string) error {
	_ = t.Unbind(bdf)
	_ = os.Remove(filepath.Join(t.Dir, "bus/pci/devices", bdf))
	return os.RemoveAll(filepath.Join(t.Dir, DevicePath(bdf)))
}

// Header returns a 4 KiB config space with a type-0 header carrying f's IDs,
// a PCI Express capability at 0x40 and no extended capabilities.
func Header(f Function) []byte {
	b := make([]byte, pci.ConfigSize)
	binary.LittleEndian.PutUint16(b[0x00:], f.Vendor)
	binary.LittleEndian.PutUint16(b[0x02:], f.Device)
	binary.LittleEndian.PutUint16(b[0x06:], 1<<4) // capability list present
	b[0x08] = f.Revision
	b[0x09] = byte(f.Class)
	b[0x0a] = byte(f.Class >> 8)
	b[0x0b] = byte(f.Class >> 16)
	binary.LittleEndian.PutUint16(b[0x2c:], f.SubVendor)
	binary.LittleEndian.PutUint16(b[0x2e:], f.SubDev)
	b[0x34] = 0x40
	b[0x40] = pci.CapIDPCIExpress // next = 0
	b[0x42] = 0x02                // version 2, endpoint
	return b
}

func (t *Tree) write(rel, content string, mode os.FileMode) error {
	return os.WriteFile(filepath.Join(t.Dir, rel), []byte(content), mode)
}

func (t *Tree) link(target, rel string) error {
	return os.Symlink(target, filepath.Join(t.Dir, rel))
}

// Attr writes (or overwrites) an attribute file of a function, creating
// sub-directories such as "tsm": Attr(bdf, "tsm/connect", "tsm0\n").
func (t *Tree) Attr(bdf, name, content string) error {
	p := filepath.Join(t.Dir, DevicePath(bdf), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// RemoveAttr deletes an attribute file of a function (older kernels, other
// architectures and malformed trees lack some).
func (t *Tree) RemoveAttr(bdf, name string) error {
	return os.Remove(filepath.Join(t.Dir, DevicePath(bdf), name))
}
