// Package libvirt is the libvirt qemu hook: domain XML in, PCI functions out,
// a gate decision from the vfio-gate daemon, and the exit status and stderr
// libvirt expects. It never calls back into libvirtd (that deadlocks).
package libvirt

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vfio-gate/vfio-gate/pci"
)

// MaxDomainXML caps what the hook reads from stdin. Real domain XML is a few
// KiB; anything near this is hostile or broken.
const MaxDomainXML = 4 << 20

// Domain is what the hook needs from a domain definition.
type Domain struct {
	Name string
	UUID string
	// LaunchSecurity is "sev", "sev-snp", "tdx", "s390-pv" or "" (none).
	LaunchSecurity string
	// PCI lists every host PCI function the domain would receive, from
	// <hostdev mode='subsystem' type='pci'> and <interface type='hostdev'>.
	PCI []HostPCI
	// Networks names the libvirt networks of <interface type='network'>:
	// one backed by a hostdev pool gets a VF only after prepare, so the hook
	// cannot gate it (preflight looks the networks up and warns).
	Networks []string
}

// HostPCI is one host PCI function assigned to the domain.
type HostPCI struct {
	BDF     pci.BDF
	Managed bool
	// Source says where it was declared: "hostdev" or "interface".
	Source string
}

// Confidential reports whether the domain runs with memory encryption /
// a TEE: its launchSecurity type is one of those listed (nil = the defaults
// sev, sev-snp, tdx, s390-pv).
func (d *Domain) Confidential(types []string) bool {
	if types == nil {
		types = []string{"sev", "sev-snp", "tdx", "s390-pv"}
	}
	return d.LaunchSecurity != "" && slices.Contains(types, d.LaunchSecurity)
}

// BDFs returns the host functions in declaration order.
func (d *Domain) BDFs() []pci.BDF {
	out := make([]pci.BDF, 0, len(d.PCI))
	for _, h := range d.PCI {
		out = append(out, h.BDF)
	}
	return out
}

// ErrBadXML is returned for empty, oversize or undecodable domain XML.
var ErrBadXML = errors.New("libvirt: bad domain XML")

// ParseDomain decodes domain XML. encoding/xml does not expand DTD entities,
// so entity-expansion bombs fail to decode instead of growing.
func ParseDomain(r io.Reader) (*Domain, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDomainXML+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading stdin: %v", ErrBadXML, err)
	}
	if len(b) > MaxDomainXML {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadXML, MaxDomainXML)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil, fmt.Errorf("%w: empty (libvirt passes the domain XML on stdin)", ErrBadXML)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(string(b)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadXML, err)
	}
	d := &Domain{Name: x.Name, UUID: x.UUID}
	if ls := x.LaunchSecurity; ls != nil {
		switch {
		case ls.SEVSNP != nil:
			d.LaunchSecurity = "sev-snp"
		case ls.SEV != nil:
			d.LaunchSecurity = "sev"
		case ls.TDX != nil:
			d.LaunchSecurity = "tdx"
		case ls.S390PV != nil:
			d.LaunchSecurity = "s390-pv"
		}
	}
	if x.Devices == nil {
		return d, nil
	}
	for i, h := range x.Devices.Hostdevs {
		if h.SubsysPCI == nil {
			continue
		}
		var a *libvirtxml.DomainAddressPCI
		if h.SubsysPCI.Source != nil {
			a = h.SubsysPCI.Source.Address
		}
		bdf, err := addrBDF(a)
		if err != nil {
			return nil, fmt.Errorf("%w: hostdev #%d: %v", ErrBadXML, i+1, err)
		}
		d.PCI = append(d.PCI, HostPCI{BDF: bdf, Managed: h.Managed != "no", Source: "hostdev"})
	}
	for i, n := range x.Devices.Interfaces {
		if n.Source != nil && n.Source.Network != nil && n.Source.Network.Network != "" {
			d.Networks = append(d.Networks, n.Source.Network.Network)
		}
		if n.Source == nil || n.Source.Hostdev == nil {
			continue
		}
		hs := n.Source.Hostdev
		if hs.PCI == nil {
			continue
		}
		bdf, err := addrBDF(hs.PCI.Address)
		if err != nil {
			return nil, fmt.Errorf("%w: interface #%d (type hostdev): %v", ErrBadXML, i+1, err)
		}
		d.PCI = append(d.PCI, HostPCI{BDF: bdf, Managed: n.Managed != "no", Source: "interface"})
	}
	return d, nil
}

// addrBDF converts a libvirt PCI <address>; a missing domain attribute means 0.
func addrBDF(a *libvirtxml.DomainAddressPCI) (pci.BDF, error) {
	if a == nil || a.Bus == nil || a.Slot == nil || a.Function == nil {
		return pci.BDF{}, errors.New("PCI source address without bus, slot and function")
	}
	var dom uint
	if a.Domain != nil {
		dom = *a.Domain
	}
	if dom > 0xffff || *a.Bus > 0xff || *a.Slot > 0x1f || *a.Function > 7 {
		return pci.BDF{}, fmt.Errorf("PCI source address out of range (domain %#x bus %#x slot %#x function %#x)", dom, *a.Bus, *a.Slot, *a.Function)
	}
	return pci.BDF{Domain: uint16(dom), Bus: uint8(*a.Bus), Device: uint8(*a.Slot), Function: uint8(*a.Function)}, nil
}
