package daemon

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

// CodeInUse is the reason code of a function another domain holds.
const CodeInUse = "in-use"

// domainLocks holds one mutex per domain: a Release never races the
// Check/Bind it undoes, while different domains are decided in parallel.
type domainLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock takes the domain's operation lock ("" = none) and returns its unlock.
func (l *domainLocks) lock(name string) func() {
	if name == "" {
		return func() {}
	}
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m := l.locks[name]
	if m == nil {
		m = &sync.Mutex{}
		l.locks[name] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// wasDeferred reports whether f was deferred at prepare for domain.
func (b *GateBackend) wasDeferred(domain string, f pci.BDF) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	return domain != "" && dom != nil && dom.Deferred[f.String()] != nil
}

// heldDevice returns (a copy of) the record of f held by domain, or nil.
func (b *GateBackend) heldDevice(domain string, f pci.BDF) *heldDevice {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dom := b.st.Domains[domain]; dom != nil {
		if h := dom.Devices[f.String()]; h != nil {
			c := *h
			return &c
		}
	}
	return nil
}

// holder returns the domain holding f, or reserving it by a deferral ("" = none).
func (b *GateBackend) holder(f pci.BDF) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.holderLocked(f)
}

func (b *GateBackend) holderLocked(f pci.BDF) string {
	for _, name := range slices.Sorted(maps.Keys(b.st.Domains)) {
		dom := b.st.Domains[name]
		if dom.Devices[f.String()] != nil || dom.Deferred[f.String()] != nil {
			return name
		}
	}
	return ""
}

// Held returns the functions a domain holds (an allow decision from this
// daemon), in BDF order.
func (b *GateBackend) Held(domain string) []pci.BDF {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	if dom == nil {
		return nil
	}
	out := []pci.BDF{}
	for _, k := range slices.Sorted(maps.Keys(dom.Devices)) {
		out = append(out, dom.Devices[k].BDF)
	}
	return out
}

// DomainTimes returns when a domain the daemon holds was last checked and
// started (zero when StartDomain never ran); ok is false for an unknown domain.
func (b *GateBackend) DomainTimes(domain string) (checked, started time.Time, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dom := b.st.Domains[domain]
	if dom == nil {
		return time.Time{}, time.Time{}, false
	}
	return dom.Checked, dom.Started, true
}

// Domains returns the names of the domains the daemon holds functions for.
func (b *GateBackend) Domains() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.st.Domains))
}
