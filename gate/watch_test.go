package gate_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
)

// fakeWatcher is a gate.AccessWatcher whose stop returns what seen builds
// for the watched function; it logs watch/stop into the world's event list,
// so the tests see them relative to the attestation's config-space opens.
type fakeWatcher struct {
	w        *world
	seen     func(pci.BDF) []audit.Access
	watchErr error
	stopErr  error

	mu      sync.Mutex
	stopped int
}

func (f *fakeWatcher) Watch(ctx context.Context, b pci.BDF) (func(context.Context) ([]audit.Access, error), error) {
	if f.watchErr != nil {
		return nil, f.watchErr
	}
	f.w.event("watch " + b.String())
	return func(context.Context) ([]audit.Access, error) {
		f.w.event("stop " + b.String())
		f.mu.Lock()
		f.stopped++
		f.mu.Unlock()
		var got []audit.Access
		if f.seen != nil {
			got = f.seen(b)
		}
		return got, f.stopErr
	}, nil
}

// doeOffset is the first DOE capability of a fixture function.
func doeOffset(t *testing.T, w *world, b pci.BDF) uint16 {
	t.Helper()
	caps, err := pci.ExtCapabilities(w.configs[b])
	must(t, err)
	offs := pci.FindExt(caps, pci.ExtCapIDDOE)
	if len(offs) == 0 {
		t.Fatalf("%s has no DOE capability", b)
	}
	return offs[0]
}

func access(pid uint32, off uint32, op string) audit.Access {
	return audit.Access{PID: pid, Comm: "hammer", Device: "0000:01:00.0", Op: op, Offset: off, Size: 4, Path: "sysfs"}
}

func TestTamperSignal(t *testing.T) {
	self := uint32(os.Getpid())
	other := self + 1
	b := "0000:01:00.0"
	cases := []struct {
		name     string
		mode     string
		seen     func(doe uint32) []audit.Access
		watchErr error
		stopErr  error
		allow    bool
		tampered bool
		would    bool
	}{
		{name: "quiet", allow: true},
		{name: "own-accesses", seen: func(doe uint32) []audit.Access {
			return []audit.Access{access(self, doe+0x10, "write"), access(self, doe+0x14, "read"), access(self, doe+0x0c, "read")}
		}, allow: true},
		{name: "other-process-outside-mailbox", seen: func(doe uint32) []audit.Access {
			return []audit.Access{access(other, 0x04, "read"), access(other, doe+0x18, "read"), access(other, doe-4, "read")}
		}, allow: true},
		{name: "other-process-reads-status", seen: func(doe uint32) []audit.Access {
			return []audit.Access{access(self, doe+0x10, "write"), access(other, doe+0x0c, "read")}
		}, tampered: true},
		{name: "other-process-writes-control", seen: func(doe uint32) []audit.Access {
			a := access(other, doe+0x08, "write")
			a.Size = 1
			return []audit.Access{a}
		}, tampered: true},
		{name: "partial-overlap", seen: func(doe uint32) []audit.Access {
			a := access(other, doe-2, "read") // a dword read straddling the capability start
			return []audit.Access{a}
		}, tampered: true},
		{name: "events-lost", stopErr: errors.New("audit: 3 events lost"), tampered: true},
		{name: "watch-failed", watchErr: errors.New("audit: guard map full"), tampered: true},
		{name: "audit-mode", mode: "audit", seen: func(doe uint32) []audit.Access {
			return []audit.Access{access(other, doe+0x14, "read")}
		}, allow: true, tampered: true, would: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, policyOpts{mode: c.mode}, dev{bdf: b, profile: "good"})
			doe := uint32(doeOffset(t, w, bdf(t, b)))
			fw := &fakeWatcher{w: w, watchErr: c.watchErr, stopErr: c.stopErr}
			if c.seen != nil {
				fw.seen = func(pci.BDF) []audit.Access { return c.seen(doe) }
			}
			ds := check(t, w.gate(func(o *gate.Options) { o.Watcher = fw }), false, bdf(t, b))
			d := ds[0]
			if d.Allowed() != c.allow || d.Verdict.WouldDeny != c.would {
				t.Fatalf("%s would_deny=%v %v, want allow=%v would_deny=%v (failure %+v)", d.Verdict.Decision, d.Verdict.WouldDeny, codes(d), c.allow, c.would, d.Evidence.Failure)
			}
			gotTamper := slices.Contains(codes(d), string(policy.CodeMailboxTampered))
			if gotTamper != c.tampered {
				t.Fatalf("reasons %v, tampered want %v", codes(d), c.tampered)
			}
			if c.tampered {
				f := d.Evidence.Failure
				if f == nil || f.Kind != attest.FailMailboxTampered || f.Step != "audit" {
					t.Fatalf("failure %+v", f)
				}
				if c.seen != nil && !strings.Contains(f.Message, "pid ") {
					t.Fatalf("message names no pid: %q", f.Message)
				}
			} else if d.Evidence.Failure != nil {
				t.Fatalf("failure %+v on an untampered check", d.Evidence.Failure)
			}
			if c.watchErr == nil {
				// The watch spans the attestation: it starts before the
				// config space is opened and stops after.
				w.mu.Lock()
				ev := slices.Clone(w.events)
				w.mu.Unlock()
				iw, io, is := slices.Index(ev, "watch "+b), slices.Index(ev, "open "+b), slices.Index(ev, "stop "+b)
				if iw < 0 || io < 0 || is < 0 || !(iw < io && io < is) || fw.stopped != 1 {
					t.Fatalf("events %v (stopped %d), want watch < open < stop, one stop", ev, fw.stopped)
				}
			}
			assertRecorded(t, w, ds)
		})
	}
}

// A function that cannot be attested (no DOE at all) under allow-unattested
// stays allowed when another process reads its header: there is no
// mailbox to tamper with.
func TestTamperNoMailbox(t *testing.T) {
	b := "0000:02:00.0"
	w := newWorld(t, policyOpts{}, dev{bdf: b, profile: "none", id: &nic})
	fw := &fakeWatcher{w: w, seen: func(pci.BDF) []audit.Access { return []audit.Access{access(uint32(os.Getpid())+1, 0x100, "read")} }}
	ds := check(t, w.gate(func(o *gate.Options) { o.Watcher = fw }), false, bdf(t, b))
	if !ds[0].Allowed() || slices.Contains(codes(ds[0]), string(policy.CodeMailboxTampered)) {
		t.Fatalf("%s %v", ds[0].Verdict.Decision, codes(ds[0]))
	}
}
