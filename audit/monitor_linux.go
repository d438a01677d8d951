//go:build linux && amd64

package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Monitor owns the loaded BPF objects, the guard list and the probes.
type Monitor struct {
	spec  *ebpf.CollectionSpec
	objs  cfgaccessMaps
	progs []*ebpf.Program // loaded by Attach, for the mode in use
	links []link.Link
	mode  Mode // set by Attach

	// The path taggers are attached only while a function is guarded
	// (they only label events): tagAttach re-attaches the ones that
	// attached in Attach, tagLinks holds them while attached. Both under
	// guardMu.
	tagAttach []func() (link.Link, error)
	tagLinks  []link.Link
	want      Mode
	log       *slog.Logger
	boot      time.Time // wall-clock time at monotonic 0

	guardMu sync.Mutex
	guarded map[string]bool
	slots   [guardSlots]string // guard_state.slot: guarded names the probes compare directly ("" free)

	syncMu  sync.Mutex
	rb      *ring // set while Run runs
	syncs   []syncReq
	started chan struct{} // closed once Run first reads
	once    sync.Once
}

// Options configure a Monitor.
type Options struct {
	Logger *slog.Logger
	// Mode chooses how Attach attaches: ModeAuto (the zero value) tries
	// fentry and falls back to kprobes; ModeFentry and ModeKprobe use that
	// mode only and fail if it cannot attach.
	Mode Mode
}

// New loads the BPF maps into the kernel; Attach loads and attaches the
// programs of the mode it uses.
func New(o Options) (*Monitor, error) {
	switch o.Mode {
	case ModeAuto, ModeFentry, ModeKprobe:
	default:
		return nil, fmt.Errorf("audit: unknown attach mode %q (want fentry, kprobe or auto)", o.Mode)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: /sys/kernel/btf/vmlinux is missing (build the kernel with CONFIG_DEBUG_INFO_BTF=y)", ErrNoBTF)
	}
	_ = rlimit.RemoveMemlock() // needed only on kernels < 5.11
	m := &Monitor{log: o.Logger, want: o.Mode, guarded: map[string]bool{}, started: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	spec, err := loadCfgaccess()
	if err != nil {
		return nil, fmt.Errorf("audit: parsing the BPF object: %w", err)
	}
	m.spec = spec
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: loading BPF maps: %v (run as root, or grant CAP_BPF and CAP_PERFMON)", ErrPermission, err)
		}
		if errors.Is(err, ebpf.ErrNotSupported) { // thread_path: task-local storage
			return nil, fmt.Errorf("%w: loading BPF maps: %v (the audit needs Linux >= 5.11)", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("audit: loading BPF maps: %w", err)
	}
	m.boot = bootTime()
	return m, nil
}

// Guard adds a function (sysfs name "0000:3b:00.0") to the guarded set.
func (m *Monitor) Guard(dev string) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	var one uint8 = 1
	if err := m.objs.Guarded.Put(nameKey(dev), one); err != nil {
		return err
	}
	if len(m.guarded) == 0 {
		m.attachTaggers() // before the count: the first access is labelled
	}
	if name := string(trimKey(nameKey(dev))); !m.guarded[name] {
		m.guarded[name] = true
		if i := slices.Index(m.slots[:], ""); i >= 0 {
			m.slots[i] = name
		}
	}
	return m.putCount()
}

// Unguard removes a function from the guarded set.
func (m *Monitor) Unguard(dev string) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	name := string(trimKey(nameKey(dev)))
	delete(m.guarded, name)
	if i := slices.Index(m.slots[:], name); i >= 0 {
		m.slots[i] = ""
	}
	// The count only decides whether the probes look the name up at all:
	// a probe between the two updates finds the map and the count
	// disagreeing for one access, which changes nothing it reports.
	if err := m.putCount(); err != nil {
		return err
	}
	if len(m.guarded) == 0 {
		m.detachTaggers()
	}
	err := m.objs.Guarded.Delete(nameKey(dev))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// attachTaggers attaches the path taggers that attached in Attach (a
// failure now is logged: the events say "unknown" for that path). Called
// with guardMu held.
func (m *Monitor) attachTaggers() {
	if len(m.tagLinks) > 0 {
		return
	}
	for _, f := range m.tagAttach {
		l, err := f()
		if err != nil {
			m.log.Warn("path tagger not re-attached", "mode", m.mode, "err", err)
			continue
		}
		m.tagLinks = append(m.tagLinks, l)
	}
}

// detachTaggers detaches the path taggers. A tag set before stays valid
// only until its system call returns (struct tag in cfgaccess.c). Called
// with guardMu held.
func (m *Monitor) detachTaggers() {
	for _, l := range m.tagLinks {
		if err := l.Close(); err != nil {
			m.log.Warn("detaching a path tagger", "err", err)
		}
	}
	m.tagLinks = nil
}

// guardSlots is how many guarded names the probes compare directly
// (GUARD_SLOTS in cfgaccess.c); more are looked up in the guarded map.
const guardSlots = 8

// putCount stores the number of guarded functions, which every probe
// checks first (zero: return at once), and the slots. Called with guardMu
// held.
func (m *Monitor) putCount() error {
	st := cfgaccessGuardState{Count: uint32(len(m.guarded)), Overflow: uint32(len(m.guarded))}
	for i, name := range m.slots {
		if name == "" {
			continue
		}
		k := nameKey(name)
		st.Slot[i] = [2]uint64{binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])}
		st.Overflow--
	}
	return m.objs.GuardCount.Put(uint32(0), st)
}

func trimKey(k [16]byte) []byte {
	for i, b := range k {
		if b == 0 {
			return k[:i]
		}
	}
	return k[:]
}

func nameKey(dev string) [16]byte {
	var k [16]byte
	copy(k[:15], dev)
	return k
}

// Attach loads and attaches the access probes (all six are required) and
// the path taggers (each optional: a static handler may be inlined, and
// vfio_pci_config_rw exists only while vfio-pci-core is loaded), as fentry
// and fexit programs (BPF trampolines) where the kernel allows, else as
// kprobes (Options.Mode). It returns the names of the path taggers that
// attached; Mode says which mode is in use.
func (m *Monitor) Attach() ([]string, error) {
	if m.mode != "" {
		return nil, fmt.Errorf("audit: already attached (%s)", m.mode)
	}
	var fentryErr error
	if m.want != ModeKprobe {
		tagged, err := m.attachFentry()
		if err == nil {
			m.mode = ModeFentry
			m.log.Info("audit probes attached", "mode", ModeFentry, "path_taggers", tagged)
			m.parkTaggers()
			return tagged, nil
		}
		fentryErr = errors.Join(err, m.detach())
		if m.want == ModeFentry {
			return nil, fentryErr
		}
		m.log.Info("fentry unavailable, falling back to kprobes", "err", fentryErr)
	}
	tagged, err := m.attachKprobes()
	if err != nil {
		err = errors.Join(err, m.detach())
		if fentryErr != nil {
			return nil, fmt.Errorf("%w; and %w", err, fentryErr)
		}
		return nil, err
	}
	m.mode = ModeKprobe
	m.log.Info("audit probes attached", "mode", ModeKprobe, "path_taggers", tagged)
	m.parkTaggers()
	return tagged, nil
}

// parkTaggers detaches the taggers Attach attached while nothing is
// guarded yet: with no function guarded, a config access then hits only
// the access probe, which returns at its guard_count check.
func (m *Monitor) parkTaggers() {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	if len(m.guarded) == 0 {
		m.detachTaggers()
	}
}

// Mode returns the attach mode in use ("" before Attach succeeds).
func (m *Monitor) Mode() Mode { return m.mode }

// access lists the six required probes: kernel symbol, kprobe program,
// fentry program.
var access = []struct{ sym, kprobe, fentry string }{
	{"pci_user_read_config_byte", "read_byte", "fe_read_byte"},
	{"pci_user_read_config_word", "read_word", "fe_read_word"},
	{"pci_user_read_config_dword", "read_dword", "fe_read_dword"},
	{"pci_user_write_config_byte", "write_byte", "fe_write_byte"},
	{"pci_user_write_config_word", "write_word", "fe_write_word"},
	{"pci_user_write_config_dword", "write_dword", "fe_write_dword"},
}

// taggers lists the optional path taggers: kernel symbol, kprobe program,
// fentry program. There is no exit probe: a tag goes stale when the
// system call that set it returns.
var taggers = []struct{ sym, kprobe, fentry string }{
	{"pci_read_config", "tag_sysfs_read", "fe_tag_sysfs_read"},
	{"pci_write_config", "tag_sysfs_write", "fe_tag_sysfs_write"},
	{"proc_bus_pci_read", "tag_proc_read", "fe_tag_proc_read"},
	{"proc_bus_pci_write", "tag_proc_write", "fe_tag_proc_write"},
	{"vfio_pci_config_rw", "tag_vfio", "fe_tag_vfio"},
}

// fentryTarget names the kernel function an fentry/fexit program for sym
// attaches to (sym itself; tests make it fail to prove the fallback).
var fentryTarget = func(sym string) string { return sym }

// load loads the named programs (sharing the Monitor's maps) and keeps
// them for Close. Only these are loaded: a tracing program names its
// target (set from to, by program name, when given), and a missing target
// fails the load.
func (m *Monitor) load(to map[string]string, names ...string) ([]*ebpf.Program, error) {
	s := m.spec.Copy()
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for n, p := range s.Programs {
		if !keep[n] {
			delete(s.Programs, n)
		} else if t, ok := to[n]; ok {
			p.AttachTo = t
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(s, ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"guarded": m.objs.Guarded, "thread_path": m.objs.ThreadPath, "events": m.objs.Events,
		"lost": m.objs.Lost, "guard_count": m.objs.GuardCount,
	}})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: loading BPF programs %v: %v (run as root, or grant CAP_BPF and CAP_PERFMON)", ErrPermission, names, err)
		}
		return nil, fmt.Errorf("audit: loading BPF programs %v: %w", names, err)
	}
	defer coll.Close()
	ps := make([]*ebpf.Program, len(names))
	for i, n := range names {
		ps[i] = coll.DetachProgram(n)
		m.progs = append(m.progs, ps[i])
	}
	return ps, nil
}

func (m *Monitor) attachFentry() ([]string, error) {
	names := make([]string, len(access))
	to := map[string]string{}
	for i, a := range access {
		names[i] = a.fentry
		to[a.fentry] = fentryTarget(a.sym)
	}
	ps, err := m.load(to, names...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoFentry, err)
	}
	for i, p := range ps {
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceFEntry})
		if err != nil {
			return nil, fmt.Errorf("%w: attaching fentry %s: %w", ErrNoFentry, access[i].sym, err)
		}
		m.links = append(m.links, l)
	}
	var tagged []string
	for _, t := range taggers {
		ps, err := m.load(map[string]string{t.fentry: fentryTarget(t.sym)}, t.fentry)
		if err != nil {
			m.log.Info("path tagger not attached", "mode", ModeFentry, "sym", t.sym, "err", err)
			continue
		}
		attach := func() (link.Link, error) {
			l, err := link.AttachTracing(link.TracingOptions{Program: ps[0], AttachType: ebpf.AttachTraceFEntry})
			if err != nil {
				return nil, fmt.Errorf("fentry %s: %w", t.sym, err)
			}
			return l, nil
		}
		l, err := attach()
		if err != nil {
			m.log.Info("path tagger not attached", "mode", ModeFentry, "sym", t.sym, "err", err)
			continue
		}
		m.tagLinks = append(m.tagLinks, l)
		m.tagAttach = append(m.tagAttach, attach)
		tagged = append(tagged, t.sym)
	}
	return tagged, nil
}

func (m *Monitor) attachKprobes() ([]string, error) {
	names := make([]string, len(access))
	for i, a := range access {
		names[i] = a.kprobe
	}
	ps, err := m.load(nil, names...)
	if err != nil {
		return nil, err
	}
	for i, p := range ps {
		l, err := link.Kprobe(access[i].sym, p, nil)
		if err != nil {
			return nil, attachErr(access[i].sym, err)
		}
		m.links = append(m.links, l)
	}
	var tagged []string
	for _, t := range taggers {
		ps, err := m.load(nil, t.kprobe)
		if err != nil {
			return nil, err
		}
		attach := func() (link.Link, error) {
			l, err := link.Kprobe(t.sym, ps[0], nil)
			if err != nil {
				return nil, fmt.Errorf("kprobe %s: %w", t.sym, err)
			}
			return l, nil
		}
		l, err := attach()
		if err != nil {
			m.log.Info("path tagger not attached", "mode", ModeKprobe, "sym", t.sym, "err", err)
			continue
		}
		m.tagLinks = append(m.tagLinks, l)
		m.tagAttach = append(m.tagAttach, attach)
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

// detach closes the links and unloads the programs.
func (m *Monitor) detach() error {
	var errs []error
	for _, l := range m.links {
		errs = append(errs, l.Close())
	}
	m.guardMu.Lock()
	for _, l := range m.tagLinks {
		errs = append(errs, l.Close())
	}
	m.tagLinks, m.tagAttach = nil, nil
	m.guardMu.Unlock()
	for _, p := range m.progs {
		errs = append(errs, p.Close())
	}
	m.links, m.progs, m.mode = nil, nil, ""
	return errors.Join(errs...)
}

// Run reads events until ctx ends, calling fn for each decoded access.
// fn must not keep the pointer after it returns: Run reuses the Access
// (one allocation fewer per event); a copy (*a) stays valid. Undecodable
// records are logged and dropped. Only one Run may be active.
func (m *Monitor) Run(ctx context.Context, fn func(*Access)) error {
	rb, err := openRing(m.objs.Events)
	if err != nil {
		return err
	}
	defer rb.close()
	m.syncMu.Lock()
	if m.rb != nil {
		m.syncMu.Unlock()
		return errors.New("audit: Monitor.Run is already running")
	}
	m.rb = rb
	m.syncMu.Unlock()
	m.once.Do(func() { close(m.started) })
	defer func() {
		m.syncMu.Lock()
		m.rb = nil
		for _, s := range m.syncs {
			close(s.done) // Sync sees rb gone and reports it
		}
		m.syncs = nil
		m.syncMu.Unlock()
	}()
	// The ring is used and closed by this goroutine only. The BPF side
	// wakes the reader only once 64 KiB are pending, so the ring is also
	// polled: every readPoll, every syncPoll while a Sync waits (Sync also
	// ends the wait at once). The deadline is set under syncMu, as Sync
	// adds its request and wakes the reader, so neither is missed.
	arm := func() {
		m.syncMu.Lock()
		d := readPoll
		if len(m.syncs) > 0 {
			d = syncPoll
		}
		err := rb.setDeadline(time.Now().Add(d))
		m.syncMu.Unlock()
		if err != nil {
			m.log.Debug("ring buffer deadline", "err", err)
		}
	}
	var dec decoder
	var a Access
	each := func(b []byte) {
		if err := dec.decodeInto(b, &a); err != nil {
			m.log.Warn("dropping undecodable event", "err", err)
			return
		}
		a.WallTime = m.boot.Add(a.Time)
		a.Attach = m.mode
		fn(&a)
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		_, busy, err := rb.read(each)
		if err != nil {
			return err
		}
		if busy { // a record is being written on another CPU
			runtime.Gosched()
			continue
		}
		// The ring was read up to the end: every record reserved before
		// now has been handed to fn (or, with a Sync waiting, more came:
		// read again).
		if m.drained(rb) {
			continue
		}
		arm()
		switch err := rb.wait(); {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, os.ErrClosed) || ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("audit: reading events: %w", err)
		}
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
// It reports whether a Sync still waits with records pending (read again
// before waiting).
func (m *Monitor) drained(rb *ring) bool {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if len(m.syncs) == 0 {
		return false
	}
	now := monotonicNow()
	if rb.available() != 0 {
		return true
	}
	keep := m.syncs[:0]
	for _, s := range m.syncs {
		if s.at <= now {
			close(s.done)
		} else {
			keep = append(keep, s)
		}
	}
	m.syncs = keep
	return false
}

// Sync returns once every access made before the call has been passed to
// the fn of the running Run (a barrier: what a caller did, or saw done,
// before Sync is in the stream when Sync returns). It fails when Run is not
// running or ends first.
func (m *Monitor) Sync(ctx context.Context) error {
	s := syncReq{at: monotonicNow(), done: make(chan struct{})}
	m.syncMu.Lock()
	rb := m.rb
	if rb == nil {
		m.syncMu.Unlock()
		return errors.New("audit: Sync: Monitor.Run is not running")
	}
	m.syncs = append(m.syncs, s)
	err := rb.wake() // end the reader's wait now
	m.syncMu.Unlock()
	if err != nil {
		m.log.Debug("ring buffer wake", "err", err)
	}
	select {
	case <-s.done:
		m.syncMu.Lock()
		running := m.rb == rb
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
