package conn

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

type fakeHolder struct {
	held     map[string][]pci.BDF
	times    map[string][2]time.Time
	released []string
	reports  []daemon.Report
}

func (f *fakeHolder) Held(d string) []pci.BDF { return f.held[d] }
func (f *fakeHolder) Domains() []string {
	var out []string
	for d := range f.times {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
func (f *fakeHolder) DomainTimes(d string) (time.Time, time.Time, bool) {
	t, ok := f.times[d]
	return t[0], t[1], ok
}
func (f *fakeHolder) Release(_ context.Context, r daemon.DomainRequest) error {
	f.released = append(f.released, r.Domain)
	delete(f.times, r.Domain)
	return nil
}
func (f *fakeHolder) Report(_ context.Context, r daemon.Report) { f.reports = append(f.reports, r) }

type fakeSource struct {
	running  []string
	xml      map[string]string
	detached []string
	// ack: the guest releases a detached hostdev at once (the live XML
	// becomes unplugged[name]); otherwise it stays listed (pending).
	ack       bool
	unplugged map[string]string
}

func (f *fakeSource) RunningDomains() ([]string, error) { return f.running, nil }
func (f *fakeSource) LiveXML(n string) (string, error)  { return f.xml[n], nil }
func (f *fakeSource) DetachHostdevPCI(name string, dom uint16, bus, slot, fn uint8, managed bool) error {
	f.detached = append(f.detached, fmt.Sprintf("%s %04x:%02x:%02x.%x", name, dom, bus, slot, fn))
	if f.ack {
		f.xml[name] = f.unplugged[name]
	}
	return nil
}

const liveXML = `<domain type='kvm'><name>vm1</name><devices>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x5e' slot='0x00' function='0x1'/></source></hostdev>
</devices></domain>`

// liveXMLHeldOnly is liveXML without the hot-plugged 0000:5e:00.1.
const liveXMLHeldOnly = `<domain type='kvm'><name>vm1</name><devices>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev>
</devices></domain>`

func TestMonitorHotplugAndReconcile(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	held, _ := pci.ParseBDF("0000:3b:00.0")
	for _, mode := range []policy.Hotplug{policy.HotplugReport, policy.HotplugDetach} {
		t.Run(string(mode), func(t *testing.T) {
			h := &fakeHolder{held: map[string][]pci.BDF{"vm1": {held}},
				times: map[string][2]time.Time{
					"vm1":      {now.Add(-time.Hour), now.Add(-time.Hour)},
					"gone":     {now.Add(-time.Hour), now.Add(-time.Hour)}, // started, no longer running
					"starting": {now.Add(-time.Second), {}},                // checked at prepare just now
					"aborted":  {now.Add(-time.Hour), {}},                  // checked long ago, never started
				}}
			src := &fakeSource{running: []string{"vm1"}, xml: map[string]string{"vm1": liveXML}, ack: true, unplugged: map[string]string{"vm1": liveXMLHeldOnly}}
			m := &Monitor{Backend: h, Hotplug: mode, Now: func() time.Time { return now }}
			for range 2 { // the second pass must not report the same hot-plug again
				if err := m.Reconcile(t.Context(), src); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(h.released, []string{"aborted", "gone"}) {
				t.Fatalf("released %v, want aborted and gone (not the running vm1, not starting)", h.released)
			}
			switch mode {
			case policy.HotplugReport:
				if len(h.reports) != 1 || h.reports[0].Kind != "hotplug" || h.reports[0].BDF != "0000:5e:00.1" || len(src.detached) != 0 {
					t.Fatalf("reports %+v detached %v", h.reports, src.detached)
				}
			case policy.HotplugDetach:
				if len(src.detached) != 1 || src.detached[0] != "vm1 0000:5e:00.1" || len(h.reports) != 1 || h.reports[0].Kind != "hotplug-detached" {
					t.Fatalf("reports %+v detached %v", h.reports, src.detached)
				}
			}
			m.OnEvent(t.Context(), Event{Domain: "vm1", Kind: "crashed"})
			m.OnEvent(t.Context(), Event{Domain: "unknown", Kind: "stopped"})
			if h.released[len(h.released)-1] != "vm1" || len(h.released) != 3 {
				t.Fatalf("released after events %v", h.released)
			}
		})
	}
}

// kinds lists the reports' kinds.
func kinds(rs []daemon.Report) []string {
	var k []string
	for _, r := range rs {
		k = append(k, r.Kind)
	}
	return k
}

// A detach libvirt accepted while the guest keeps the device (no ACPI eject,
// as with a guest that ignores the unplug request) is reported as pending,
// once, and not requested again every poll; when the guest lets go it is
// reported detached.
func TestMonitorHotplugDetachPending(t *testing.T) {
	held, _ := pci.ParseBDF("0000:3b:00.0")
	h := &fakeHolder{held: map[string][]pci.BDF{"vm1": {held}}, times: map[string][2]time.Time{}}
	src := &fakeSource{running: []string{"vm1"}, xml: map[string]string{"vm1": liveXML}}
	m := &Monitor{Backend: h, Hotplug: policy.HotplugDetach}
	for range 3 {
		if err := m.Reconcile(t.Context(), src); err != nil {
			t.Fatal(err)
		}
	}
	if len(src.detached) != 1 || !slices.Equal(kinds(h.reports), []string{"hotplug-detach-pending"}) || h.reports[0].BDF != "0000:5e:00.1" {
		t.Fatalf("while the guest keeps it: detach requests %v, reports %+v; want one request, one hotplug-detach-pending", src.detached, h.reports)
	}
	src.xml["vm1"] = liveXMLHeldOnly // the guest released it
	for range 2 {
		if err := m.Reconcile(t.Context(), src); err != nil {
			t.Fatal(err)
		}
	}
	if len(src.detached) != 1 || !slices.Equal(kinds(h.reports), []string{"hotplug-detach-pending", "hotplug-detached"}) || h.reports[1].BDF != "0000:5e:00.1" || h.reports[1].Domain != "vm1" {
		t.Fatalf("after the guest let go: detach requests %v, reports %+v", src.detached, h.reports)
	}
}

// The same function hot-plugged again after it left the domain (detached by
// hand, or the domain stopped and started again) is a new hot-plug and is
// reported again.
func TestMonitorHotplugReplug(t *testing.T) {
	h := &fakeHolder{held: map[string][]pci.BDF{}, times: map[string][2]time.Time{}}
	src := &fakeSource{running: []string{"vm1"}, xml: map[string]string{"vm1": liveXML}}
	m := &Monitor{Backend: h, Hotplug: policy.HotplugReport}
	step := func(running []string, xml string) {
		t.Helper()
		src.running, src.xml["vm1"] = running, xml
		if err := m.Reconcile(t.Context(), src); err != nil {
			t.Fatal(err)
		}
	}
	step([]string{"vm1"}, liveXML)         // 2 hot-plugged functions: 2 reports
	step([]string{"vm1"}, liveXML)         // nothing new
	step([]string{"vm1"}, liveXMLHeldOnly) // 5e:00.1 detached by hand
	step([]string{"vm1"}, liveXML)         // and hot-plugged again: reported again
	if len(h.reports) != 3 || h.reports[2].BDF != "0000:5e:00.1" {
		t.Fatalf("after a re-plug: reports %+v, want 3 (the last 0000:5e:00.1)", h.reports)
	}
	step(nil, "")                  // the domain stopped (it holds nothing: no release to forget it)
	step([]string{"vm1"}, liveXML) // started again with both hot-plugged
	if !slices.Equal(kinds(h.reports), []string{"hotplug", "hotplug", "hotplug", "hotplug", "hotplug"}) || len(src.detached) != 0 {
		t.Fatalf("after a restart: reports %v detached %v, want 5 hotplug reports, no detach", kinds(h.reports), src.detached)
	}
}

// syncHolder and slowSource are fakes safe for concurrent use; the
// source's detach takes a while, as libvirt's does.
type syncHolder struct {
	mu sync.Mutex
	fakeHolder
}

func (f *syncHolder) Report(ctx context.Context, r daemon.Report) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fakeHolder.Report(ctx, r)
}

type slowSource struct {
	mu sync.Mutex
	fakeSource
}

func (f *slowSource) RunningDomains() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.running), nil
}
func (f *slowSource) LiveXML(n string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.xml[n], nil
}
func (f *slowSource) DetachHostdevPCI(name string, dom uint16, bus, slot, fn uint8, managed bool) error {
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fakeSource.DetachHostdevPCI(name, dom, bus, slot, fn, managed)
}

// Reconcile passes that overlap (after a reconnect and on the timer) detach
// a hot-plugged hostdev once and report it once.
func TestMonitorReconcileSerialised(t *testing.T) {
	held, _ := pci.ParseBDF("0000:3b:00.0")
	h := &syncHolder{fakeHolder: fakeHolder{held: map[string][]pci.BDF{"vm1": {held}}, times: map[string][2]time.Time{}}}
	src := &slowSource{fakeSource: fakeSource{running: []string{"vm1"}, xml: map[string]string{"vm1": liveXML},
		ack: true, unplugged: map[string]string{"vm1": liveXMLHeldOnly}}}
	m := &Monitor{Backend: h, Hotplug: policy.HotplugDetach}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := m.Reconcile(t.Context(), src); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(src.detached) != 1 || !slices.Equal(kinds(h.reports), []string{"hotplug-detached"}) {
		t.Fatalf("detach requests %v, reports %v: want one each", src.detached, kinds(h.reports))
	}
}

// failingSource refuses every detach until ok is set.
type failingSource struct {
	fakeSource
	ok bool
}

func (f *failingSource) DetachHostdevPCI(name string, dom uint16, bus, slot, fn uint8, managed bool) error {
	if !f.ok {
		f.detached = append(f.detached, "refused")
		return fmt.Errorf("operation failed: device not found")
	}
	return f.fakeSource.DetachHostdevPCI(name, dom, bus, slot, fn, managed)
}

// A detach libvirt refuses is requested again on every pass but reported
// once; when it finally succeeds, that is reported.
func TestMonitorHotplugDetachRefused(t *testing.T) {
	held, _ := pci.ParseBDF("0000:3b:00.0")
	h := &fakeHolder{held: map[string][]pci.BDF{"vm1": {held}}, times: map[string][2]time.Time{}}
	src := &failingSource{fakeSource: fakeSource{running: []string{"vm1"}, xml: map[string]string{"vm1": liveXML},
		ack: true, unplugged: map[string]string{"vm1": liveXMLHeldOnly}}}
	m := &Monitor{Backend: h, Hotplug: policy.HotplugDetach}
	for range 3 {
		if err := m.Reconcile(t.Context(), src); err != nil {
			t.Fatal(err)
		}
	}
	if len(src.detached) != 3 || !slices.Equal(kinds(h.reports), []string{"hotplug"}) || !strings.Contains(h.reports[0].Message, "detaching it failed") {
		t.Fatalf("refused: detach requests %v, reports %+v; want three requests, one report", src.detached, h.reports)
	}
	src.ok = true
	if err := m.Reconcile(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kinds(h.reports), []string{"hotplug", "hotplug-detached"}) {
		t.Fatalf("after libvirt accepted: reports %v", kinds(h.reports))
	}
}
