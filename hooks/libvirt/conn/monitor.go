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

	// recMu serialises Reconcile: a pass after a reconnect and one on the
	// timer must not both release a domain or both detach one hostdev.
	recMu    sync.Mutex
	mu       sync.Mutex
	reported map[string]hotplugState // "domain|bdf" hot-plugs seen on a running domain
}

// hotplugState is what the Monitor did about one hot-plugged hostdev. The
// entry is dropped once the hostdev is no longer in the domain's live XML (or
// the domain stopped), so the same function hot-plugged again is new.
type hotplugState int

const (
	hotplugReported hotplugState = iota + 1 // report: reported; detach: detached
	// hotplugPending: libvirt accepted the detach, but the live XML still
	// lists the hostdev: the guest has not released it (an unplug needs
	// the guest's consent: ACPI eject, PCIe slot power-off). Not requested
	// again; reported as detached once it is gone.
	hotplugPending
	// hotplugDetachFailed: libvirt refused the detach; reported once,
	// requested again on every pass.
	hotplugDetachFailed
)

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

// forgetNotRunning drops the hot-plug entries of domains not running (a
// domain the daemon holds nothing for gets no release to forget them).
func (m *Monitor) forgetNotRunning(running map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.reported {
		if d, _, _ := strings.Cut(k, "|"); !running[d] {
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
	m.recMu.Lock()
	defer m.recMu.Unlock()
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
	m.forgetNotRunning(isRunning)
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

// mark records what was done about the hot-plug key ("domain|bdf").
func (m *Monitor) mark(key string, st hotplugState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reported[key] = st
}

func (m *Monitor) checkHotplug(ctx context.Context, src Source, name string, dom *lvhook.Domain) {
	held := map[pci.BDF]bool{}
	for _, b := range m.Backend.Held(name) {
		held[b] = true
	}
	present := map[string]bool{}
	for _, h := range dom.PCI {
		if !held[h.BDF] {
			present[name+"|"+h.BDF.String()] = true
		}
	}
	// Entries whose hostdev left the live XML: a pending detach completed;
	// anything else is forgotten (hot-plugging the function again is new).
	m.mu.Lock()
	var completed []string
	for k, st := range m.reported {
		if d, bdf, _ := strings.Cut(k, "|"); d == name && !present[k] {
			if st == hotplugPending {
				completed = append(completed, bdf)
			}
			delete(m.reported, k)
		}
	}
	if m.reported == nil {
		m.reported = map[string]hotplugState{}
	}
	m.mu.Unlock()
	for _, bdf := range completed {
		m.Backend.Report(ctx, daemon.Report{Kind: "hotplug-detached", Domain: name, BDF: bdf,
			Message: fmt.Sprintf("PCI hostdev %s hot-plugged into running domain %s without a gate decision: detached (policy libvirt.hotplug: detach; the guest released it after the unplug request)", bdf, name)})
	}
	for _, h := range dom.PCI {
		if held[h.BDF] {
			continue
		}
		key := name + "|" + h.BDF.String()
		m.mu.Lock()
		st := m.reported[key]
		if m.Hotplug != policy.HotplugDetach || h.Source != "hostdev" || st == hotplugPending {
			m.reported[key] = max(st, hotplugReported)
		}
		m.mu.Unlock()
		if m.Hotplug != policy.HotplugDetach {
			if st == 0 {
				m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
					Message: fmt.Sprintf("PCI hostdev %s on running domain %s has no gate decision (hot-plug bypasses the libvirt hook); policy libvirt.hotplug is report: left attached", h.BDF, name)})
			}
			continue
		}
		if h.Source != "hostdev" {
			// <interface type='hostdev'> is detached as an interface; we do not
			// guess its XML: report loudly instead.
			if st == 0 {
				m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
					Message: fmt.Sprintf("hot-plugged <interface type='hostdev'> %s on domain %s has no gate decision and cannot be detached by vfio-gate: detach it by hand", h.BDF, name)})
			}
			continue
		}
		if st == hotplugPending {
			continue // requested before; waiting for the guest
		}
		err := src.DetachHostdevPCI(name, h.BDF.Domain, h.BDF.Bus, h.BDF.Device, h.BDF.Function, h.Managed)
		if err != nil {
			if st != hotplugDetachFailed { // reported once; tried again every pass
				m.mark(key, hotplugDetachFailed)
				m.Backend.Report(ctx, daemon.Report{Kind: "hotplug", Domain: name, BDF: h.BDF.String(),
					Message: fmt.Sprintf("PCI hostdev %s on running domain %s has no gate decision; detaching it failed (retried every poll, reported once): %v", h.BDF, name, err)})
			}
			continue
		}
		// libvirt returns success once QEMU was asked to unplug; the
		// hostdev is gone only when the guest let go. Only the live XML
		// says which.
		if still, why := stillAttached(src, name, h.BDF); still {
			m.mark(key, hotplugPending)
			m.Backend.Report(ctx, daemon.Report{Kind: "hotplug-detach-pending", Domain: name, BDF: h.BDF.String(),
				Message: fmt.Sprintf("PCI hostdev %s hot-plugged into running domain %s without a gate decision: libvirt sent the unplug request (policy libvirt.hotplug: detach) but %s: the guest still has the device until it releases it or the domain stops", h.BDF, name, why)})
			continue
		}
		m.mark(key, hotplugReported)
		m.Backend.Report(ctx, daemon.Report{Kind: "hotplug-detached", Domain: name, BDF: h.BDF.String(),
			Message: fmt.Sprintf("PCI hostdev %s hot-plugged into running domain %s without a gate decision: detached (policy libvirt.hotplug: detach)", h.BDF, name)})
	}
}

// stillAttached re-reads the live XML after a detach: true (with why) when
// it still lists the hostdev or cannot be read.
func stillAttached(src Source, name string, bdf pci.BDF) (bool, string) {
	x, err := src.LiveXML(name)
	if err != nil {
		return true, "its removal cannot be confirmed (" + err.Error() + ")"
	}
	dom, err := lvhook.ParseDomain(strings.NewReader(x))
	if err != nil {
		return true, "its removal cannot be confirmed (live XML: " + err.Error() + ")"
	}
	for _, h := range dom.PCI {
		if h.BDF == bdf {
			return true, "the live XML still lists it"
		}
	}
	return false, ""
}
