package conn

import (
	"fmt"
	"strings"

	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
)

// Network is one libvirt network a domain's <interface type='network'>
// uses, with its forward mode ("hostdev": a pool of PCI functions libvirt
// picks from after prepare, which the hook cannot gate), or why it could
// not be looked up.
type Network struct {
	Name        string
	ForwardMode string
	Err         error
}

// Warning is what a person checking the domain should know about n, "" when
// nothing: a hostdev pool cannot be gated, and a network that could not be
// looked up may be one.
func (n Network) Warning() string {
	switch {
	case n.Err != nil:
		return fmt.Sprintf("network %s: %v: cannot tell whether it hands out PCI functions", n.Name, n.Err)
	case n.ForwardMode == "hostdev":
		return fmt.Sprintf("<interface type='network'> uses network %s, a hostdev pool: libvirt picks the PCI function after prepare, "+
			"so the hook cannot gate it; use <interface type='hostdev'> with a source address", n.Name)
	}
	return ""
}

// DefinedDomain fetches the persistent definition of the domain name from
// libvirtd (uri, socket) and looks up the networks it uses.
func DefinedDomain(uri, socket, name string) (*lvhook.Domain, []Network, error) {
	lc, err := Dial(uri, socket)
	if err != nil {
		return nil, nil, err
	}
	defer lc.Close()
	x, err := lc.DomainXML(name)
	if err != nil {
		return nil, nil, err
	}
	dom, err := lvhook.ParseDomain(strings.NewReader(x))
	if err != nil {
		return nil, nil, err
	}
	var nets []Network
	for _, n := range dom.Networks {
		mode, err := lc.NetworkForwardMode(n)
		nets = append(nets, Network{Name: n, ForwardMode: mode, Err: err})
	}
	return dom, nets, nil
}
