//go:build linux && amd64

package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// Monitor owns the loaded BPF objects, the guard list and the probes.
type Monitor struct {
	objs  cfgaccessObjects
	links []link.Link
	log   *slog.Logger
	boot  time.Time // wall-clock time at monotonic 0

	syncMu  sync.Mutex
	rd      *ringbuf.Reader // set while Run runs
	syncs   []syncReq
	started chan struct{} // closed once Run first reads
	once    sync.Once
}

// Options configure a Monitor.
type Options struct {
	Logger *slog.Logger
}

// New loads the BPF programs and maps into the kernel (nothing is attached yet).
func New(o Options) (*Monitor, error) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: /sys/kernel/btf/vmlinux is missing (build the kernel with CONFIG_DEBUG_INFO_BTF=y)", ErrNoBTF)
	}
	_ = rlimit.RemoveMemlock() // needed only on kernels < 5.11
	m := &Monitor{log: o.Logger, started: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := loadCfgaccessObjects(&m.objs, nil); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: loading BPF programs: %v (run as root, or grant CAP_BPF and CAP_PERFMON)", ErrPermission, err)
		}
		return nil, fmt.Errorf("audit: loading BPF programs: %w", err)
	}
	m.boot = bootTime()
	return m, nil
}

// Guard adds a function (sysfs name "0000:3b:00.0") to the guarded set.
func (m *Monitor) Guard(dev string) error {
	var one uint8 = 1
	return m.objs.Guarded.Put(nameKey(dev), one)
}

// Unguard removes a function from the guarded set.
func (m *Monitor) Unguard(dev string) error {
	err := m.objs.Guarded.Delete(nameKey(dev))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

func nameKey(dev string) [16]byte {
	var k [16]byte
	copy(k[:15], dev)
	return k
}

// Attach attaches the access probes (all six are required) and the path
// taggers (each optional: a static handler may be inlined, and
// vfio_pci_config_rw exists only while vfio-pci-core is loaded). It returns
// the names of the path taggers that attached.
func (m *Monitor) Attach() ([]string, error) {
	req := []struct {
		sym string
		p   *ebpf.Program
	}{
		{"pci_user_read_config_byte", m.objs.ReadByte}, {"pci_user_read_config_word", m.objs.ReadWord},
		{"pci_user_read_config_dword", m.objs.ReadDword}, {"pci_user_write_config_byte", m.objs.WriteByte},
		{"pci_user_write_config_word", m.objs.WriteWord}, {"pci_user_write_config_dword", m.objs.WriteDword},
	}
	for _, r := range req {
		l, err := link.Kprobe(r.sym, r.p, nil)
		if err != nil {
			return nil, errors.Join(attachErr(r.sym, err), m.detach())
		}
		m.links = append(m.links, l)
	}
	var tagged []string
	for _, t := range []struct {
		sym string
		p   *ebpf.Program
	}{
		{"pci_read_config", m.objs.TagSysfsRead}, {"pci_write_config", m.objs.TagSysfsWrite},
		{"proc_bus_pci_read", m.objs.TagProcRead}, {"proc_bus_pci_write", m.objs.TagProcWrite},
		{"vfio_pci_config_rw", m.objs.TagVfio},
	} {
		entry, err := link.Kprobe(t.sym, t.p, nil)
		if err != nil {
			m.log.Info("path tagger not attached", "sym", t.sym, "err", err)
			continue
		}
		ret, err := link.Kretprobe(t.sym, m.objs.UntagRet, nil)
		if err != nil {
			entry.Close()
			continue
		}
		m.links = append(m.links, entry, ret)
		tagged = append(tagged, t.sym)
	}
	return tagged, nil
}

func attachErr(sym string, err error) error {
	if !kprobePMU() && !tracefsKprobes() {
		return fmt.Errorf("%w: attaching kprobe %s: the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no tracefs kprobe_events: build it with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS, or run the audit where kprobes exist: %v", ErrNoKprobes, sym, err)
	}
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: attaching kprobe %s: %v (the kernel lacks CONFIG_KPROBES / kprobe events)", ErrNoKprobes, sym, err)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: attaching kprobe %s: %v (symbol missing or kprobes unavailable on this kernel)", ErrNoKprobes, sym, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: attaching kprobe %s: %v (needs CAP_BPF and CAP_PERFMON)", ErrPermission, sym, err)
	}
	return fmt.Errorf("audit: attaching kprobe %s: %w", sym, err)
}

func (m *Monitor) detach() error {
	var errs []error
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	m.links = nil
	return errors.Join(errs...)
}

// Run reads events until ctx ends, calling fn for each decoded access.
// Undecodable records are logged and dropped. Only one Run may be active.
func (m *Monitor) Run(ctx context.Context, fn func(*Access)) error {
	rd, err := ringbuf.NewReader(m.objs.Events)
	if err != nil {
		return fmt.Errorf("audit: ring buffer: %w", err)
	}
	defer rd.Close()
	m.syncMu.Lock()
	if m.rd != nil {
		m.syncMu.Unlock()
		return errors.New("audit: Monitor.Run is already running")
	}
	m.rd = rd
	m.syncMu.Unlock()
	m.once.Do(func() { close(m.started) })
	defer func() {
		m.syncMu.Lock()
		m.rd = nil
		for _, s := range m.syncs {
			close(s.done) // Sync sees rd gone and reports it
		}
		m.syncs = nil
		m.syncMu.Unlock()
	}()
	// The reader is used and closed by this goroutine only: closing it from
	// another (on ctx) raced with AvailableBytes/SetDeadline on the closed
	// ring (a nil dereference inside ringbuf, seen once in test/vm). Every
	// read ends within readPoll, so ctx is checked here instead.
	var rec ringbuf.Record
	for {
		if ctx.Err() != nil {
			return nil
		}
		m.syncMu.Lock()
		pending := len(m.syncs) > 0
		m.syncMu.Unlock()
		// The BPF side wakes the reader only once 64 KiB are pending, so
		// the ring is also polled: every readPoll, every syncPoll while a
		// Sync waits.
		if pending {
			rd.SetDeadline(time.Now().Add(syncPoll))
		} else {
			rd.SetDeadline(time.Now().Add(readPoll))
		}
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
		case errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, os.ErrDeadlineExceeded):
			// ReadInto returns these only after reading up to the end of
			// the ring: everything reserved before now has been handed to fn.
			m.drained(rd)
			continue
		case errors.Is(err, ringbuf.ErrClosed) || ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("audit: reading events: %w", err)
		}
		a, err := DecodeAccess(rec.RawSample)
		if err != nil {
			m.log.Warn("dropping undecodable event", "err", err)
			continue
		}
		a.WallTime = m.boot.Add(a.Time)
		fn(a)
	}
}

// Started is closed once Run is reading events (Sync works from then on).
func (m *Monitor) Started() <-chan struct{} { return m.started }

// How often Run polls the ring: events below the BPF side's wakeup
// threshold wait at most readPoll (syncPoll while a Sync waits).
const (
	readPoll = 20 * time.Millisecond
	syncPoll = 2 * time.Millisecond
)

type syncReq struct {
	at   time.Duration // CLOCK_MONOTONIC when Sync was called
	done chan struct{}
}

// drained completes the Syncs called before a moment at which the ring was
// empty: the BPF side reserves a record before the access it reports, so
// every access made before Sync was called has been passed to Run's fn.
func (m *Monitor) drained(rd *ringbuf.Reader) {
	now := monotonicNow()
	if rd.AvailableBytes() != 0 {
		return
	}
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	keep := m.syncs[:0]
	for _, s := range m.syncs {
		if s.at <= now {
			close(s.done)
		} else {
			keep = append(keep, s)
		}
	}
	m.syncs = keep
}

// Sync returns once every access made before the call has been passed to
// the fn of the running Run (a barrier: what a caller did, or saw done,
// before Sync is in the stream when Sync returns). It fails when Run is not
// running or ends first.
func (m *Monitor) Sync(ctx context.Context) error {
	s := syncReq{at: monotonicNow(), done: make(chan struct{})}
	m.syncMu.Lock()
	rd := m.rd
	if rd == nil {
		m.syncMu.Unlock()
		return errors.New("audit: Sync: Monitor.Run is not running")
	}
	m.syncs = append(m.syncs, s)
	m.syncMu.Unlock()
	if err := rd.Flush(); err != nil { // wake a Read blocked without deadline
		m.log.Debug("ring buffer flush", "err", err)
	}
	select {
	case <-s.done:
		m.syncMu.Lock()
		running := m.rd == rd
		m.syncMu.Unlock()
		if !running {
			return errors.New("audit: Sync: Monitor.Run ended")
		}
		return nil
	case <-ctx.Done():
		m.syncMu.Lock()
		for i, x := range m.syncs {
			if x.done == s.done {
				m.syncs = append(m.syncs[:i], m.syncs[i+1:]...)
				break
			}
		}
		m.syncMu.Unlock()
		return fmt.Errorf("audit: Sync: %w", ctx.Err())
	}
}

// Lost returns the number of events the kernel side could not queue.
func (m *Monitor) Lost() (uint64, error) {
	var n uint64
	err := m.objs.Lost.Lookup(uint32(0), &n)
	return n, err
}

// Close detaches and unloads everything.
func (m *Monitor) Close() error { return errors.Join(m.detach(), m.objs.Close()) }

func bootTime() time.Time {
	// time.Now has a monotonic reading but not its origin; estimate the wall
	// time of CLOCK_MONOTONIC 0 from one paired reading.
	return time.Now().Add(-monotonicNow())
}

func kprobePMU() bool {
	_, err := os.Stat("/sys/bus/event_source/devices/kprobe/type")
	return err == nil
}

func tracefsKprobes() bool {
	for _, p := range []string{"/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
