package conn

import (
	"context"
	"fmt"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"libvirt.org/go/libvirtxml"
)

// DefaultSocket is libvirtd's read-write socket.
const DefaultSocket = "/var/run/libvirt/libvirt-sock"

// Conn is a connection to libvirtd for one URI.
type Conn struct {
	l   *libvirt.Libvirt
	URI string
}

// Dial connects to libvirtd's socket and opens uri ("qemu:///system", "test:///default").
func Dial(uri, socket string) (*Conn, error) {
	if socket == "" {
		socket = DefaultSocket
	}
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(libvirt.ConnectURI(uri)); err != nil {
		return nil, fmt.Errorf("libvirt: connect %s via %s: %w", uri, socket, err)
	}
	return &Conn{l: l, URI: uri}, nil
}

// Close disconnects.
func (c *Conn) Close() error { return c.l.Disconnect() }

// Domains lists every defined or running domain's name.
func (c *Conn) Domains() ([]string, error) {
	doms, _, err := c.l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("libvirt: list domains: %w", err)
	}
	names := make([]string, len(doms))
	for i, d := range doms {
		names[i] = d.Name
	}
	return names, nil
}

// DomainXML returns the persistent (inactive) definition of a domain: what
// would run at the next start, which is what a preflight checks.
func (c *Conn) DomainXML(name string) (string, error) {
	d, err := c.l.DomainLookupByName(name)
	if err != nil {
		return "", fmt.Errorf("libvirt: domain %q: %w", name, err)
	}
	x, err := c.l.DomainGetXMLDesc(d, libvirt.DomainXMLInactive)
	if err != nil {
		return "", fmt.Errorf("libvirt: domain %q XML: %w", name, err)
	}
	return x, nil
}

// LiveXML returns the running definition of a domain (hot-plugged devices included).
func (c *Conn) LiveXML(name string) (string, error) {
	d, err := c.l.DomainLookupByName(name)
	if err != nil {
		return "", fmt.Errorf("libvirt: domain %q: %w", name, err)
	}
	return c.l.DomainGetXMLDesc(d, 0)
}

// Event is one domain lifecycle event.
type Event struct {
	Domain string
	// Kind is libvirt's event: "defined", "undefined", "started", "suspended",
	// "resumed", "stopped", "shutdown", "pmsuspended", "crashed".
	Kind   string
	Detail int32
}

var eventNames = []string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"}

// Lifecycle streams lifecycle events until ctx ends or the connection drops
// (the channel closes; reconnecting is the caller's job).
func (c *Conn) Lifecycle(ctx context.Context) (<-chan Event, error) {
	in, err := c.l.LifecycleEvents(ctx)
	if err != nil {
		return nil, fmt.Errorf("libvirt: subscribe to lifecycle events: %w", err)
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		for m := range in {
			kind := fmt.Sprintf("event-%d", m.Event)
			if m.Event >= 0 && int(m.Event) < len(eventNames) {
				kind = eventNames[m.Event]
			}
			select {
			case out <- Event{Domain: m.Dom.Name, Kind: kind, Detail: m.Detail}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// RunningDomains lists the names of the active domains.
func (c *Conn) RunningDomains() ([]string, error) {
	doms, _, err := c.l.ConnectListAllDomains(1, libvirt.ConnectListDomainsActive)
	if err != nil {
		return nil, fmt.Errorf("libvirt: list running domains: %w", err)
	}
	names := make([]string, len(doms))
	for i, d := range doms {
		names[i] = d.Name
	}
	return names, nil
}

// DetachHostdevPCI detaches the PCI hostdev with source address
// domain:bus:slot.function from the running domain (live only).
func (c *Conn) DetachHostdevPCI(name string, dom uint16, bus, slot, fn uint8, managed bool) error {
	d, err := c.l.DomainLookupByName(name)
	if err != nil {
		return fmt.Errorf("libvirt: domain %q: %w", name, err)
	}
	m := "no"
	if managed {
		m = "yes"
	}
	x := fmt.Sprintf("<hostdev mode='subsystem' type='pci' managed='%s'><source><address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/></source></hostdev>",
		m, dom, bus, slot, fn)
	if err := c.l.DomainDetachDeviceFlags(d, x, uint32(libvirt.DomainDeviceModifyLive)); err != nil {
		return fmt.Errorf("libvirt: detach %04x:%02x:%02x.%x from %q: %w", dom, bus, slot, fn, name, err)
	}
	return nil
}

// NetworkForwardMode returns the <forward mode=...> of a libvirt network
// ("" when it has none): "hostdev" means a pool of PCI functions (VFs).
func (c *Conn) NetworkForwardMode(name string) (string, error) {
	n, err := c.l.NetworkLookupByName(name)
	if err != nil {
		return "", fmt.Errorf("libvirt: network %q: %w", name, err)
	}
	x, err := c.l.NetworkGetXMLDesc(n, 0)
	if err != nil {
		return "", fmt.Errorf("libvirt: network %q XML: %w", name, err)
	}
	var nx libvirtxml.Network
	if err := nx.Unmarshal(x); err != nil {
		return "", fmt.Errorf("libvirt: network %q XML: %w", name, err)
	}
	if nx.Forward == nil {
		return "", nil
	}
	return nx.Forward.Mode, nil
}
