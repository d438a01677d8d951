package audit

import (
	"github.com/vfio-gate/vfio-gate/pci"
)

// LayoutOf finds the DOE and MSI-X capabilities of function b under the
// sysfs root, for Classify; what cannot be read is left out
// (classification degrades, never fails).
func LayoutOf(sysfsRoot string, b pci.BDF) Layout {
	var l Layout
	r, err := pci.OpenRoot(sysfsRoot)
	if err != nil {
		return l
	}
	defer r.Close()
	f, err := r.OpenFile("bus/pci/devices/"+b.String()+"/config", 0)
	if err != nil {
		return l
	}
	defer f.Close()
	if caps, err := pci.ExtCapabilities(f); err == nil {
		l.DOE = pci.FindExt(caps, pci.ExtCapIDDOE)
	}
	if caps, err := pci.Capabilities(f); err == nil {
		for _, c := range caps {
			if c.ID == pci.CapIDMSIX {
				l.MSIX = c.Offset
			}
		}
	}
	return l
}

// Layouts are the layouts of the functions named (BDF strings), keyed by
// canonical BDF, as LayoutOf finds them; an error names a BDF that does not
// parse.
func Layouts(sysfsRoot string, devices []string) (map[string]Layout, error) {
	out := map[string]Layout{}
	for _, d := range devices {
		b, err := pci.ParseBDF(d)
		if err != nil {
			return nil, err
		}
		out[b.String()] = LayoutOf(sysfsRoot, b)
	}
	return out, nil
}
