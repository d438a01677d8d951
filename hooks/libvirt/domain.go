package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// MaxDomainXML caps what the hook reads from stdin. Real domain XML is a few
// KiB; anything near this is hostile or broken.
const MaxDomainXML = 4 << 20

// Domain is what the hook needs from a domain definition.
type Domain struct {
	Name string
	UUID string
	// LaunchSecurity is the <launchSecurity type=...> value as written
	// ("sev", "sev-snp", "tdx", "s390-pv", or a type libvirtxml does not
	// know), "" when there is none.
	LaunchSecurity string
	// Marked is true when the domain's <metadata> holds
	// <vfio-gate:gate confidential="yes"/> (namespace MetadataNamespace):
	// the operator marks it confidential without a launchSecurity libvirt
	// accepts. It only ever adds gating; "no" changes nothing.
	Marked bool
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
// sev, sev-snp, tdx, s390-pv), or its metadata marks it confidential.
func (d *Domain) Confidential(types []string) bool {
	if types == nil {
		types = policy.BuiltinConfidentialTypes
	}
	return d.Marked || d.LaunchSecurity != "" && slices.Contains(types, d.LaunchSecurity)
}

// MetadataNamespace is the XML namespace of vfio-gate's element in a
// domain's <metadata>:
//
//	<metadata>
//	  <vfio-gate:gate xmlns:vfio-gate="https://github.com/vfio-gate/vfio-gate/xmlns/libvirt/1" confidential="yes"/>
//	</metadata>
const MetadataNamespace = "https://github.com/vfio-gate/vfio-gate/xmlns/libvirt/1"

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
	ls, doc, err := launchSecurityOf(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadXML, err)
	}
	marked, err := markedConfidential(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadXML, err)
	}
	var x libvirtxml.Domain
	if err := x.Unmarshal(string(doc)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadXML, err)
	}
	d := &Domain{Name: x.Name, UUID: x.UUID, LaunchSecurity: ls, Marked: marked}
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

// libvirtxmlLaunchSecurity are the launchSecurity types libvirtxml decodes.
var libvirtxmlLaunchSecurity = []string{"sev", "sev-snp", "s390-pv", "tdx"}

// launchSecurityOf returns the type of the domain's <launchSecurity> ("" for
// none) and the document for libvirtxml: unchanged, or, for a type libvirtxml
// does not know (it drops such a type, and refuses one with content), with
// that element emptied, its type kept here. Two launchSecurity elements or
// one without a type are errors.
func launchSecurityOf(b []byte) (string, []byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	depth, typ, found := 0, "", 0
	doc := b
	closed := false // the root element has ended
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, err
		}
		if closed {
			// libvirt writes one document; anything after its end
			// (a second <domain>, text, comments) is refused, not ignored.
			if c, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(c)) != 0 {
				return "", nil, fmt.Errorf("data after the end of the root element (at byte %d)", before)
			}
			continue
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && t.Name.Local == "launchSecurity" {
				found++
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						typ = a.Value
					}
				}
				if found > 1 {
					return "", nil, fmt.Errorf("%d <launchSecurity> elements", found)
				}
				if typ == "" {
					return "", nil, errors.New("<launchSecurity> without a type")
				}
				if !slices.Contains(libvirtxmlLaunchSecurity, typ) {
					if err := dec.Skip(); err != nil {
						return "", nil, err
					}
					doc = slices.Concat(b[:before], []byte("<launchSecurity/>"), b[dec.InputOffset():])
					continue
				}
			}
			depth++
		case xml.EndElement:
			depth--
			closed = depth == 0
		}
	}
	return typ, doc, nil
}

// markedConfidential reads vfio-gate's element in the domain's <metadata>
// (MetadataNamespace): true for confidential="yes", false for "no" or no
// element. Anything else in that namespace is refused rather than guessed
// at, so a typo cannot quietly leave a domain ungated: a second element, one
// not named gate, a missing or other confidential value, another attribute.
// b is one well-formed document (launchSecurityOf has decoded it).
func markedConfidential(b []byte) (bool, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	depth, inMeta, found, marked := 0, false, 0, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return marked, nil
		}
		if err != nil {
			return false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				inMeta = t.Name.Local == "metadata"
			}
			if t.Name.Space == "vfio-gate" {
				// encoding/xml leaves an undeclared prefix as the space.
				return false, fmt.Errorf("<vfio-gate:%s> without xmlns:vfio-gate=%q", t.Name.Local, MetadataNamespace)
			}
			if t.Name.Space != MetadataNamespace {
				continue
			}
			if !inMeta || depth != 3 {
				return false, fmt.Errorf("<%s> of namespace %s where only <domain><metadata><gate/> may be", t.Name.Local, MetadataNamespace)
			}
			if t.Name.Local != "gate" {
				return false, fmt.Errorf("<metadata>: unknown element <%s> of namespace %s (only <gate confidential=\"yes|no\"/>)", t.Name.Local, MetadataNamespace)
			}
			if found++; found > 1 {
				return false, fmt.Errorf("<metadata>: %d vfio-gate <gate> elements", found)
			}
			conf := ""
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
				case a.Name.Space == "" && a.Name.Local == "confidential":
					conf = a.Value
				default:
					return false, fmt.Errorf("<metadata>: vfio-gate <gate>: unknown attribute %q", a.Name.Local)
				}
			}
			switch conf {
			case "yes":
				marked = true
			case "no":
			default:
				return false, fmt.Errorf("<metadata>: vfio-gate <gate confidential=%q>: want \"yes\" or \"no\"", conf)
			}
		case xml.EndElement:
			if depth == 2 {
				inMeta = false
			}
			depth--
		}
	}
}
