// Package conn talks to libvirtd with go-libvirt: it fetches defined domains'
// XML for preflight checks and watches lifecycle events for the daemon. The
// hook process never uses it (a hook must not call back into libvirtd).
package conn

import (
	"context"
	"fmt"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
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
