//go:build linux && amd64

package audit

import (
	"context"
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

	// vfioText says whether the caller ranges cover vfio-pci-core (it may
	// be loaded after Attach: the first Guard reads them again if that
	// changed). Under guardMu.
	vfioText bool
	want     Mode
	log      *slog.Logger
	boot     time.Time // wall-clock time at monotonic 0

	guardMu sync.Mutex
	guarded map[string]uint64  // name → kernfs node id of its sysfs directory
	slots   [guardSlots]string // guard_state.slot: guarded names the probes compare directly ("" free)
	gmem    *guardMem          // guard_count's value, mmapped

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
	case ModeAuto, ModeFentry, ModeKprobeMulti, ModeKprobe:
	default:
		return nil, fmt.Errorf("audit: unknown attach mode %q (want auto, fentry, kprobe-multi or kprobe)", o.Mode)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: /sys/kernel/btf/vmlinux is missing (build the kernel with CONFIG_DEBUG_INFO_BTF=y)", ErrNoBTF)
	}
	_ = rlimit.RemoveMemlock() // needed only on kernels < 5.11
	m := &Monitor{log: o.Logger, want: o.Mode, guarded: map[string]uint64{}, started: make(chan struct{})}
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
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("%w: loading BPF maps: %v (the audit needs Linux >= 5.11)", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("audit: loading BPF maps: %w", err)
	}
	if m.gmem, err = mapGuard(m.objs.GuardCount); err != nil {
		return nil, errors.Join(err, m.objs.Close())
	}
	m.boot = bootTime()
	return m, nil
}

// Guard adds a function (sysfs name "0000:3b:00.0") to the guarded set.
// The probes know it by its sysfs directory (kernfs node id), which Guard
// looks up now: a function that does not exist cannot be guarded, and one
// removed and added again must be guarded again.
func (m *Monitor) Guard(dev string) error {
	name := string(trimKey(nameKey(dev)))
	id, err := deviceID(name)
	if err != nil {
		return err
	}
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	if old, ok := m.guarded[name]; ok && old == id {
		return nil
	} else if ok {
		if err := m.unguard(name); err != nil {
			return err
		}
	}
	e := cfgaccessGuardEntry{Id: id, Name: nameWords(name)}
	if err := m.objs.Guarded.Put(id, e); err != nil {
		return err
	}
	if len(m.guarded) == 0 && m.mode != "" && m.vfioText != vfioLoaded() {
		m.putCallers() // before the count: the first access is labelled
	}
	m.guarded[name] = id
	if i := slices.Index(m.slots[:], ""); i >= 0 {
		m.slots[i] = name
		m.gmem.set(i, id, name)
	}
	m.putCount()
	return nil
}

// Unguard removes a function from the guarded set.
func (m *Monitor) Unguard(dev string) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	return m.unguard(string(trimKey(nameKey(dev))))
}

// unguard is Unguard with guardMu held.
func (m *Monitor) unguard(name string) error {
	id, ok := m.guarded[name]
	if !ok {
		return nil
	}
	delete(m.guarded, name)
	if i := slices.Index(m.slots[:], name); i >= 0 {
		m.slots[i] = ""
		m.gmem.clear(i)
	}
	// The count only decides whether the probes look at all: a probe
	// between the updates finds the map and the count disagreeing for one
	// access, which changes nothing it reports.
	m.putCount()
	err := m.objs.Guarded.Delete(id)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// putCallers reads /proc/kallsyms and stores the caller ranges the probes
// label an access's path by (a failure is logged: the events say
// "unknown"). It returns the functions found. Called with guardMu held or
// before Run.
func (m *Monitor) putCallers() []string {
	m.vfioText = vfioLoaded()
	var st cfgaccessCallers
	defer func() {
		if err := m.objs.CallerRanges.Put(uint32(0), st); err != nil {
			m.log.Warn("storing the caller ranges", "err", err)
		}
	}()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		m.log.Warn("no caller ranges: paths will say unknown", "err", err)
		return nil
	}
	defer f.Close()
	ranges, found, err := readCallers(f)
	if err != nil {
		m.log.Warn("no caller ranges: paths will say unknown", "err", err)
		return nil
	}
	if len(ranges) > len(st.R) {
		m.log.Warn("too many caller ranges, some paths will say unknown", "ranges", len(ranges))
		ranges = ranges[:len(st.R)]
	}
	for i, r := range ranges {
		st.R[i].Start, st.R[i].End, st.R[i].Path = r.Start, r.End, uint32(r.Path)
	}
	return found
}

// vfioLoaded says whether vfio-pci-core is loaded.
func vfioLoaded() bool {
	_, err := os.Stat("/sys/module/" + vfioModule)
	return err == nil
}

// guardSlots is how many guarded names the probes compare directly
// (GUARD_SLOTS in cfgaccess.c); more are looked up in the guarded map.
const guardSlots = 8

// putCount stores the number of guarded functions, which every probe
// checks first (zero: return at once), and how many are in no slot.
// Called with guardMu held.
func (m *Monitor) putCount() {
	n := 0
	for _, name := range m.slots {
		if name != "" {
			n++
		}
	}
	m.gmem.counts(len(m.guarded), len(m.guarded)-n)
}

// Attach loads and attaches the access probes (all six are required) as
// fentry programs (BPF trampolines) where the kernel allows, else as
// kprobe.multi links (fprobe), else as classic kprobes (Options.Mode), and
// stores the caller ranges that label each access's path. It returns the
// names of the path functions found (pci_read_config, ...;
// vfio_pci_config_rw while vfio-pci-core is loaded); Mode says which mode
// is in use.
func (m *Monitor) Attach() ([]string, error) {
	if m.mode != "" {
		return nil, fmt.Errorf("audit: already attached (%s)", m.mode)
	}
	var errs []error // why the modes tried before failed, in order
	for _, mode := range []Mode{ModeFentry, ModeKprobeMulti, ModeKprobe} {
		if m.want != ModeAuto && m.want != mode {
			continue
		}
		err := m.attachMode(mode)
		if err == nil {
			m.mode = mode
			tagged := m.callers()
			m.log.Info("audit probes attached", "mode", mode, "path_taggers", tagged)
			return tagged, nil
		}
		err = errors.Join(err, m.detach())
		if m.want == mode {
			return nil, err
		}
		if mode != ModeKprobe {
			m.log.Info("audit attach mode unavailable, falling back", "mode", mode, "err", err)
		}
		errs = append(errs, err)
	}
	// With ModeAuto: the classic kprobes' reason first (the last resort),
	// then fentry's and kprobe.multi's.
	err := errs[len(errs)-1]
	for _, e := range errs[:len(errs)-1] {
		err = fmt.Errorf("%w; and %w", err, e)
	}
	return nil, err
}

func (m *Monitor) attachMode(mode Mode) error {
	switch mode {
	case ModeFentry:
		return m.attachFentry()
	case ModeKprobeMulti:
		return m.attachKprobeMulti()
	}
	return m.attachKprobes()
}

func (m *Monitor) callers() []string {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	return m.putCallers()
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

// fentryTarget names the kernel function an fentry program for sym
// attaches to (sym itself; tests make it fail to prove the fallback).
var fentryTarget = func(sym string) string { return sym }

// load loads the named programs (sharing the Monitor's maps) and keeps
// them for Close. Only these are loaded: a tracing program names its
// target (set from to, by program name, when given), and a missing target
// fails the load.
//
// attach, unless AttachNone, replaces the programs' attach type (a
// kprobe program loaded for kprobe.multi links).
func (m *Monitor) load(to map[string]string, attach ebpf.AttachType, names ...string) ([]*ebpf.Program, error) {
	s := m.spec.Copy()
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	for n, p := range s.Programs {
		if !keep[n] {
			delete(s.Programs, n)
			continue
		}
		if t, ok := to[n]; ok {
			p.AttachTo = t
		}
		if attach != ebpf.AttachNone {
			p.AttachType = attach
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(s, ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"guarded": m.objs.Guarded, "caller_ranges": m.objs.CallerRanges, "frame_off": m.objs.FrameOff, "events": m.objs.Events,
		"lost": m.objs.Lost, "guard_count": m.objs.GuardCount, "records": m.objs.Records,
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

func (m *Monitor) attachFentry() error {
	names := make([]string, len(access))
	to := map[string]string{}
	for i, a := range access {
		names[i] = a.fentry
		to[a.fentry] = fentryTarget(a.sym)
	}
	ps, err := m.load(to, ebpf.AttachNone, names...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoFentry, err)
	}
	for i, p := range ps {
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceFEntry})
		if err != nil {
			return fmt.Errorf("%w: attaching fentry %s: %w", ErrNoFentry, access[i].sym, err)
		}
		m.links = append(m.links, l)
	}
	return nil
}

// kprobeMultiSymbol names the kernel function a kprobe.multi link for sym
// attaches to (sym itself; tests make it fail to prove the fallback).
var kprobeMultiSymbol = func(sym string) string { return sym }

// attachKprobeMulti attaches the kprobe programs as kprobe.multi links, one
// per function (fprobe, Linux >= 5.18 with CONFIG_FPROBE: the ftrace
// callback runs the program directly, without the kprobe and perf-event
// layers around a classic kprobe). The programs are the kprobe ones: the
// context is the same pt_regs, sp at the return address.
func (m *Monitor) attachKprobeMulti() error {
	ps, err := m.load(nil, ebpf.AttachTraceKprobeMulti, kprobeNames()...)
	if err != nil {
		return fmt.Errorf("%w: %w (kprobe.multi needs Linux >= 5.18 with CONFIG_FPROBE)", ErrNoKprobeMulti, err)
	}
	for i, p := range ps {
		l, err := link.KprobeMulti(p, link.KprobeMultiOptions{Symbols: []string{kprobeMultiSymbol(access[i].sym)}})
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("%w: attaching kprobe.multi %s: %v (needs CAP_BPF and CAP_PERFMON)", ErrPermission, access[i].sym, err)
			}
			return fmt.Errorf("%w: attaching kprobe.multi %s: %w (needs Linux >= 5.18 with CONFIG_FPROBE)", ErrNoKprobeMulti, access[i].sym, err)
		}
		m.links = append(m.links, l)
	}
	return nil
}

func kprobeNames() []string {
	names := make([]string, len(access))
	for i, a := range access {
		names[i] = a.kprobe
	}
	return names
}

func (m *Monitor) attachKprobes() error {
	ps, err := m.load(nil, ebpf.AttachNone, kprobeNames()...)
	if err != nil {
		return err
	}
	for i, p := range ps {
		l, err := link.Kprobe(access[i].sym, p, nil)
		if err != nil {
			return attachErr(access[i].sym, err)
		}
		m.links = append(m.links, l)
	}
	return nil
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
	// wakes the reader only every 1,024 records (80 KiB), so the ring is also
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
	each := m.reader(fn)
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

// reader returns the function Run's ring walk calls with each record:
// decode into one reused Access, add what the record does not hold, call
// fn.
func (m *Monitor) reader(fn func(*Access)) func([]byte) {
	var dec decoder
	var a Access
	return func(b []byte) {
		if err := dec.decodeInto(b, &a); err != nil {
			m.log.Warn("dropping undecodable event", "err", err)
			return
		}
		a.WallTime = m.boot.Add(a.Time)
		a.Attach = m.mode
		fn(&a)
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
func (m *Monitor) Close() error { return errors.Join(m.detach(), m.gmem.close(), m.objs.Close()) }

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
