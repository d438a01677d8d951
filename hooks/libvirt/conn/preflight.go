package conn

import (
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
