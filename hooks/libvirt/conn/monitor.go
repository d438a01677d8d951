package conn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Holder is what the Monitor needs from the daemon's backend
// (*daemon.GateBackend implements it).
type Holder interface {
	Held(domain string) []pci.BDF
	Domains() []string
	DomainTimes(domain string) (checked, started time.Time, ok bool)
	Release(ctx context.Context, req daemon.DomainRequest) error
	Report(ctx context.Context, r daemon.Report)
}

// Source is what the Monitor reads from libvirtd (*Conn implements it).
type Source interface {
	RunningDomains() ([]string, error)
	LiveXML(name string) (string, error)
	DetachHostdevPCI(name string, dom uint16, bus, slot, fn uint8, managed bool) error
}

// Monitor keeps the daemon's view in line with libvirt's: it makes sure a
// domain that stopped or crashed is released (libvirt's release hook does it
// too; both are idempotent), and it finds PCI hostdevs on running domains
// that have no gate decision (hot-plug calls no hook), reporting them and,
// when the policy says detach, detaching them.
type Monitor struct {
	Backend Holder
	// Hotplug is the policy's libvirt.hotplug ("" = report).
	Hotplug policy.Hotplug
	Logger  *slog.Logger
	// Grace: a domain checked at prepare but not running is only released by
	// Reconcile once this much time passed since the check without a start
	// (it may still be starting). Default 5 minutes.
	Grace time.Duration
	Now   func() time.Time

	mu       sync.Mutex
	reported map[string]bool // "domain|bdf" hot-plugs already reported
}

func (m *Monitor) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Monitor) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// OnEvent handles one lifecycle event: stopped or crashed → release.
func (m *Monitor) OnEvent(ctx context.Context, e Event) {
	if e.Kind != "stopped" && e.Kind != "crashed" {
		return
	}
	if _, _, ok := m.Backend.DomainTimes(e.Domain); !ok {
		return
	}
	m.log().InfoContext(ctx, "domain went away; releasing", "domain", e.Domain, "event", e.Kind)
	if err := m.Backend.Release(ctx, daemon.DomainRequest{Domain: e.Domain}); err != nil {
		m.log().WarnContext(ctx, "release after domain stop failed", "domain", e.Domain, "err", err)
	}
	m.forget(e.Domain)
}

func (m *Monitor) forget(domain string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.reported {
		if strings.HasPrefix(k, domain+"|") {
			delete(m.reported, k)
		}
	}
}

// Reconcile compares libvirt's running domains with what the daemon holds:
// held domains that are not running (and started, or checked longer ago
// than Grace) are released; hostdevs of running domains without a gate
// decision are reported (and detached per policy). It returns the first
// error talking to libvirtd.
func (m *Monitor) Reconcile(ctx context.Context, src Source) error {
	running, err := src.RunningDomains()
	if err != nil {
		return err
	}
	isRunning := map[string]bool{}
	for _, n := range running {
		isRunning[n] = true
	}
	grace := m.Grace
	if grace <= 0 {
		grace = 5 * time.Minute
	}
	for _, d := range m.Backend.Domains() {
		if isRunning[d] {
			continue
		}
		checked, started, ok := m.Backend.DomainTimes(d)
		if !ok || (started.IsZero() && m.now().Sub(checked) < grace) {
			continue
		}
		m.log().InfoContext(ctx, "held domain is not running; releasing", "domain", d)
		if err := m.Backend.Release(ctx, daemon.DomainRequest{Domain: d}); err != nil {
			m.log().WarnContext(ctx, "release of a stopped domain failed", "domain", d, "err", err)
		}
		m.forget(d)
	}
	for _, name := range running {
		x, err := src.LiveXML(name)
		if err != nil {
			m.log().DebugContext(ctx, "live XML unavailable", "domain", name, "err", err)
			continue
		}
		dom, err := lvhook.ParseDomain(strings.NewReader(x))
		if err != nil {
			m.Backend.Report(ctx, daemon.Report{Kind: "bad-xml", Domain: name, Message: "live domain XML cannot be parsed: " + err.Error()})
			continue
		}
		m.checkHotplug(ctx, src, name, dom)
	}
	return nil
}

func (m *Monitor) checkHotplug(ctx context.Context, src Source, name string, dom *lvhook.Domain) {
	held := map[pci.BDF]bool{}
	for _, b := range m.Backend.Held(name) {
		held[b] = true
	}
	for _, h := range dom.PCI {
		if held[h.BDF] {
			continue
		}
		key := name + "|" + h.BDF.String()
		m.mu.Lock()
		if m.reported == nil {
			m.reported = map[string]bool{}
		}
		seen := m.reported[key]
		m.reported[key] = true
		m.mu.Unlock()
		if m.Hotplug != policy.HotplugDetach {
			if !seen {
				m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
					Message: fmt.Sprintf("PCI hostdev %s on running domain %s has no gate decision (hot-plug bypasses the libvirt hook); policy libvirt.hotplug is report: left attached", h.BDF, name)})
			}
			continue
		}
		if h.Source != "hostdev" {
			// <interface type='hostdev'> is detached as an interface; we do not
			// guess its XML: report loudly instead.
			if !seen {
				m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
					Message: fmt.Sprintf("hot-plugged <interface type='hostdev'> %s on domain %s has no gate decision and cannot be detached by vfio-gate: detach it by hand", h.BDF, name)})
			}
			continue
		}
		err := src.DetachHostdevPCI(name, h.BDF.Domain, h.BDF.Bus, h.BDF.Device, h.BDF.Function, h.Managed)
		if err != nil {
			m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
				Message: fmt.Sprintf("PCI hostdev %s on running domain %s has no gate decision; detaching it failed: %v", h.BDF, name, err)})
			m.mu.Lock()
			delete(m.reported, key) // try again next time
			m.mu.Unlock()
			continue
		}
		m.Backend.Report(ctx, daemon.Report{Kind: "hotplug-detached", Domain: name, BDF: h.BDF.String(),
			Message: fmt.Sprintf("PCI hostdev %s hot-plugged into running domain %s without a gate decision: detached (policy libvirt.hotplug: detach)", h.BDF, name)})
	}
}
