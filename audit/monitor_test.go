//go:build linux && amd64

package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
)

// TestLoadAndGuard loads the committed BPF object into the running kernel
// (the verifier and CO-RE relocations against its BTF) and exercises the
// guard map. It needs root and BTF, not kprobes.
func TestLoadAndGuard(t *testing.T) {
	testutil.Require(t, testutil.BPF)
	fakeDeviceIDs(t)
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Guard("0000:3b:00.0"); err != nil {
		t.Fatal(err)
	}
	var v cfgaccessGuardEntry
	if err := m.objs.Guarded.Lookup(fakeID("0000:3b:00.0"), &v); err != nil || v != (cfgaccessGuardEntry{Id: fakeID("0000:3b:00.0"), Name: nameWords("0000:3b:00.0")}) {
		t.Fatalf("guarded lookup %v %v", v, err)
	}
	if err := m.Unguard("0000:3b:00.0"); err != nil {
		t.Fatal(err)
	}
	if err := m.Unguard("0000:3b:00.0"); err != nil {
		t.Fatalf("second unguard: %v", err)
	}
	if n, err := m.Lost(); err != nil || n != 0 {
		t.Fatalf("lost %d %v", n, err)
	}
	// guard_count, which every probe checks first, follows the guard set:
	// repeated Guard and Unguard of one name count once.
	count := func() uint32 {
		var g cfgaccessGuardState
		if err := m.objs.GuardCount.Lookup(uint32(0), &g); err != nil {
			t.Fatal(err)
		}
		return g.Count
	}
	for _, step := range []struct {
		guard bool
		dev   string
		want  uint32
	}{
		{true, "0000:3b:00.0", 1}, {true, "0000:3b:00.0", 1}, {true, "0000:3b:00.1", 2},
		{false, "0000:3b:00.0", 1}, {false, "0000:3b:00.0", 1}, {false, "0000:3b:00.1", 0},
	} {
		f := m.Unguard
		if step.guard {
			f = m.Guard
		}
		if err := f(step.dev); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != step.want {
			t.Fatalf("after guard=%v %s: guard_count %d, want %d", step.guard, step.dev, n, step.want)
		}
	}
	if !testutil.Required(testutil.Kprobes, os.Getenv(testutil.EnvRequire)) && testutil.Kprobes.Probe() != nil {
		// Without kprobes, Attach must fail with a clear, typed error.
		if _, err := m.Attach(); !errors.Is(err, ErrNoKprobes) {
			t.Fatalf("Attach without kprobes: %v, want ErrNoKprobes", err)
		}
		if m.Mode() != "" {
			t.Fatalf("Mode() = %q after a failed Attach", m.Mode())
		}
	}
}

// TestGuardSlots: the first eight guarded names sit in guard_state's
// slots (the probes compare them there), further ones are counted as
// overflow (the probes then also look in the guarded map); a slot freed by
// Unguard is reused, and every guarded name stays in the guarded map.
func TestGuardSlots(t *testing.T) {
	testutil.Require(t, testutil.BPF)
	fakeDeviceIDs(t)
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	state := func() cfgaccessGuardState {
		var g cfgaccessGuardState
		if err := m.objs.GuardCount.Lookup(uint32(0), &g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	slotOf := func(g cfgaccessGuardState, name string) int {
		w := cfgaccessGuardEntry{Id: fakeID(name), Name: nameWords(name)}
		for i, s := range g.Slot {
			if s == w {
				return i
			}
		}
		return -1
	}
	name := func(i int) string { return fmt.Sprintf("0000:3b:%02x.0", i) }
	for i := range 9 {
		if err := m.Guard(name(i)); err != nil {
			t.Fatal(err)
		}
	}
	g := state()
	if g.Count != 9 || g.Overflow != 1 {
		t.Fatalf("9 guarded: count %d overflow %d, want 9 and 1", g.Count, g.Overflow)
	}
	for i := range 8 {
		if slotOf(g, name(i)) < 0 {
			t.Fatalf("%s not in a slot: %x", name(i), g.Slot)
		}
	}
	if slotOf(g, name(8)) >= 0 {
		t.Fatalf("the ninth name is in a slot")
	}
	freed := slotOf(g, name(3))
	if err := m.Unguard(name(3)); err != nil {
		t.Fatal(err)
	}
	if g := state(); g.Count != 8 || g.Overflow != 1 || g.Slot[freed] != (cfgaccessGuardEntry{}) {
		t.Fatalf("after Unguard: count %d overflow %d slot %x", g.Count, g.Overflow, g.Slot[freed])
	}
	if err := m.Guard(name(9)); err != nil {
		t.Fatal(err)
	}
	if g := state(); g.Count != 9 || g.Overflow != 1 || slotOf(g, name(9)) != freed {
		t.Fatalf("after Guard: count %d overflow %d, slot of %s %d, want %d", g.Count, g.Overflow, name(9), slotOf(g, name(9)), freed)
	}
	for _, i := range []int{0, 8, 9} {
		var v cfgaccessGuardEntry
		if err := m.objs.Guarded.Lookup(fakeID(name(i)), &v); err != nil || v.Id != fakeID(name(i)) || v.Name != nameWords(name(i)) {
			t.Fatalf("%s not in the guarded map: %v", name(i), err)
		}
	}
	if err := m.Unguard(name(8)); err != nil {
		t.Fatal(err)
	}
	if g := state(); g.Count != 8 || g.Overflow != 0 {
		t.Fatalf("after the overflow name's Unguard: count %d overflow %d", g.Count, g.Overflow)
	}
}

// fakeID is the node id fakeDeviceIDs gives a name: the generation 1 in
// the high half, as kernfs ids have, and a different low half per name.
func fakeID(name string) uint64 {
	var h uint32 = 2166136261
	for i := range len(name) {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return 1<<32 | uint64(h|1)
}

// fakeDeviceIDs lets the test guard functions that do not exist.
func fakeDeviceIDs(t *testing.T) {
	old := deviceID
	deviceID = func(dev string) (uint64, error) { return fakeID(dev), nil }
	t.Cleanup(func() { deviceID = old })
}

// TestDeviceID: a function is known by its sysfs directory's inode
// number; a name that is no function (or no name) is refused.
func TestDeviceID(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "../devices", "0000:ff:1f.7", "a\x00b"} {
		if id, err := deviceID(bad); !errors.Is(err, pci.ErrNoDevice) {
			t.Errorf("deviceID(%q) = %d, %v; want pci.ErrNoDevice", bad, id, err)
		}
	}
	ents, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil || len(ents) == 0 {
		t.Skipf("no PCI functions in sysfs: %v", err)
	}
	dev := ents[0].Name()
	id, err := deviceID(dev)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join("/sys/bus/pci/devices", dev, "."))
	if err != nil {
		t.Fatal(err)
	}
	if ino := fi.Sys().(*syscall.Stat_t).Ino; id != ino || id == 0 {
		t.Fatalf("deviceID(%s) = %d, the directory's inode is %d", dev, id, ino)
	}
}

// ownCgroupID returns the id of this process's cgroup v2 directory (its
// inode number). cgroup2 is read at /sys/fs/cgroup, or mounted for the
// test in a temporary directory.
func ownCgroupID(t *testing.T) (uint64, bool) {
	root := "/sys/fs/cgroup"
	if _, err := os.Stat(root + "/cgroup.controllers"); err != nil {
		root = t.TempDir()
		if err := unix.Mount("cgroup2", root, "cgroup2", 0, ""); err != nil {
			t.Logf("no cgroup2 (mount: %v): cgroup id not compared", err)
			return 0, false
		}
		t.Cleanup(func() { _ = unix.Unmount(root, 0) })
		// Our own mount (the test/vm guest, everything in the root
		// cgroup, id 1): move the process into a child cgroup, so the
		// id compared is not the root's.
		child := filepath.Join(root, "vfio-gate-audit-test")
		if err := os.Mkdir(child, 0o755); err != nil {
			t.Fatal(err)
		}
		pid := []byte(fmt.Sprint(os.Getpid()))
		if err := os.WriteFile(filepath.Join(child, "cgroup.procs"), pid, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), pid, 0)
			_ = os.Remove(child)
		})
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			fi, err := os.Stat(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			return fi.Sys().(*syscall.Stat_t).Ino, true
		}
	}
	t.Logf("no cgroup v2 line in /proc/self/cgroup: cgroup id not compared")
	return 0, false
}

// TestUnknownMode: an attach mode other than fentry, kprobe or auto is
// refused before anything is loaded.
func TestUnknownMode(t *testing.T) {
	if _, err := New(Options{Mode: "uprobe"}); err == nil || !strings.Contains(err.Error(), "unknown attach mode") {
		t.Fatalf("New with mode uprobe: %v", err)
	}
}

// TestSysfsReadProducesOneEvent attaches the probes, guards one real function
// and reads its config space through sysfs (read-only): exactly one attributed
// event per access. Runs where kprobes exist (the test/vm guest).
//
// It runs once per attach mode, forced (fentry, kprobe-multi, kprobe): each
// must attach there and say so in Mode and in every event. kprobe-multi
// runs where the kernel has fprobe (register_fprobe in /proc/kallsyms);
// elsewhere forcing it must fail with ErrNoKprobeMulti.
func TestSysfsReadProducesOneEvent(t *testing.T) {
	testutil.Require(t, testutil.BPF, testutil.Kprobes)
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	sort.Strings(devs)
	if len(devs) < 2 {
		t.Skip("needs two PCI functions")
	}
	for _, mode := range []Mode{ModeFentry, ModeKprobeMulti, ModeKprobe} {
		if mode == ModeKprobeMulti && !fprobeBuilt(t) {
			t.Run(string(mode)+"-refused", func(t *testing.T) {
				m, err := New(Options{Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if _, err := m.Attach(); !errors.Is(err, ErrNoKprobeMulti) || m.Mode() != "" {
					t.Fatalf("forced kprobe-multi without fprobe: %v, mode %q; want ErrNoKprobeMulti, no mode", err, m.Mode())
				}
			})
			continue
		}
		t.Run(string(mode), func(t *testing.T) {
			sysfsReadOneEvent(t, mode, mode, filepath.Base(devs[0]), filepath.Base(devs[1]), 0)
		})
		// With the eight slots taken, the function is found in the
		// guarded hash map (its id, then its name copied from there).
		t.Run(string(mode)+"-overflow", func(t *testing.T) {
			sysfsReadOneEvent(t, mode, mode, filepath.Base(devs[0]), filepath.Base(devs[1]), guardSlots)
		})
	}
}

// TestAutoFallsBackToKprobes: with ModeAuto, when the fentry programs
// cannot load (here: their target is a function the kernel does not have,
// so the kernel's own refusal is what triggers it), Attach falls back to
// kprobes, says so in Mode and in the events, and the audit works. Runs
// where kprobes exist (the test/vm guest).
func TestAutoFallsBackToKprobes(t *testing.T) {
	testutil.Require(t, testutil.BPF, testutil.Kprobes)
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	sort.Strings(devs)
	if len(devs) < 2 {
		t.Skip("needs two PCI functions")
	}
	saved, savedMulti := fentryTarget, kprobeMultiSymbol
	t.Cleanup(func() { fentryTarget, kprobeMultiSymbol = saved, savedMulti })
	fentryTarget = func(sym string) string { return sym + "_vfio_gate_missing" }
	// fentry refused: kprobe.multi where the kernel has fprobe, else kprobes.
	next := ModeKprobe
	if fprobeBuilt(t) {
		next = ModeKprobeMulti
	}
	t.Run("no-fentry", func(t *testing.T) {
		sysfsReadOneEvent(t, ModeAuto, next, filepath.Base(devs[0]), filepath.Base(devs[1]), 0)
	})
	// fentry and kprobe.multi refused: kprobes.
	kprobeMultiSymbol = func(sym string) string { return sym + "_vfio_gate_missing" }
	t.Run("no-fentry-no-multi", func(t *testing.T) {
		sysfsReadOneEvent(t, ModeAuto, ModeKprobe, filepath.Base(devs[0]), filepath.Base(devs[1]), 0)
	})

	// Forced fentry does not fall back: it fails with ErrNoFentry.
	m, err := New(Options{Mode: ModeFentry})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Attach(); !errors.Is(err, ErrNoFentry) || m.Mode() != "" {
		t.Fatalf("forced fentry with a missing target: %v, mode %q; want ErrNoFentry, no mode", err, m.Mode())
	}
}

// sysfsReadOneEvent reads guarded and other through sysfs with guarded
// guarded (after fill stand-in functions, which take the slots first).
func sysfsReadOneEvent(t *testing.T, opt, mode Mode, guarded, other string, fill int) {
	if fill > 0 {
		real := deviceID
		t.Cleanup(func() { deviceID = real })
		deviceID = func(dev string) (uint64, error) {
			if strings.HasPrefix(dev, "ffff:ff:") {
				return fakeID(dev), nil
			}
			return real(dev)
		}
	}
	m, err := New(Options{Mode: opt})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tagged, err := m.Attach()
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode() != mode {
		t.Fatalf("Mode() = %q after Attach with Options.Mode %q, want %q", m.Mode(), opt, mode)
	}
	t.Logf("%s: path functions %v", mode, tagged)
	for i := range fill {
		if err := m.Guard(fmt.Sprintf("ffff:ff:%02x.0", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Guard(guarded); err != nil {
		t.Fatal(err)
	}
	if g := m.gmem.st; fill >= guardSlots && (g.Overflow != 1 || g.Count != uint32(fill+1)) {
		t.Fatalf("%d guarded: count %d overflow %d, want the last in the map", fill+1, g.Count, g.Overflow)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *Access, 64)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, func(a *Access) { c := *a; got <- &c }) }()

	read := func(bdf string, off int64) {
		f, err := os.Open("/sys/bus/pci/devices/" + bdf + "/config")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 4)
		if n, err := f.ReadAt(b, off); n != 4 {
			t.Fatalf("read: %d %v", n, err)
		}
	}
	cg, cgOK := ownCgroupID(t)
	read(other, 0)     // unguarded: no event
	read(guarded, 0x8) // guarded: one dword read at 0x8
	var events []*Access
	timeout := time.After(3 * time.Second)
loop:
	for {
		select {
		case a := <-got:
			events = append(events, a)
		case <-timeout:
			break loop
		}
	}
	if len(events) != 1 {
		cancel()
		<-done
		t.Fatalf("events = %+v, want exactly one", events)
	}
	a := events[0]
	if a.Device != guarded || a.Op != "read" || a.Offset != 0x8 || a.Size != 4 || a.PID != uint32(os.Getpid()) || a.Comm == "" || a.Attach != mode {
		t.Fatalf("event %+v", a)
	}
	// The cgroup id (loads from the task, not the helper) is the id of
	// this process's cgroup v2 directory, its inode number, where cgroup2
	// is mounted at /sys/fs/cgroup; 1 is the root cgroup's.
	if cgOK && a.CgroupID != cg {
		t.Fatalf("cgroup id %d, want %d (this process's cgroup v2 directory)", a.CgroupID, cg)
	} else if a.CgroupID == 0 {
		t.Fatalf("cgroup id 0")
	}
	wantPath := "unknown"
	if slices.Contains(tagged, "pci_read_config") {
		wantPath = "sysfs" // its range found at Attach
	}
	if a.Path != wantPath {
		t.Fatalf("path %q, want %q (path functions %v)", a.Path, wantPath, tagged)
	}
	if slices.Contains(tagged, "proc_bus_pci_read") {
		procfsReadOneEvent(t, ctx, m, got, guarded)
	}
	cancel()
	<-done
	if err := m.Unguard(guarded); err != nil {
		t.Fatal(err)
	}
	t.Logf("event: %+v", a)
}

// procfsReadOneEvent reads guarded through /proc/bus/pci and checks its one
// event says path procfs (the caller ranges tell the paths apart).
func procfsReadOneEvent(t *testing.T, ctx context.Context, m *Monitor, got <-chan *Access, guarded string) {
	t.Helper()
	proc := "/proc/bus/pci/" + guarded[:7] + "/" + guarded[8:] // DDDD:BB/DD.F
	if strings.HasPrefix(guarded, "0000:") {
		proc = "/proc/bus/pci/" + guarded[5:7] + "/" + guarded[8:]
	}
	f, err := os.Open(proc)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, err = f.ReadAt(b, 0xc)
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", proc, err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b.Offset != 0xc || b.Path != "procfs" {
			t.Fatalf("read through %s: %+v, want offset 0xc and path procfs", proc, b)
		}
	default:
		t.Fatalf("no event for the read through %s", proc)
	}
}

// TestWatcherSync proves the Watcher's barrier on a real kernel: a watch of
// one function, N sysfs reads of it by this process, then stop returns
// exactly those N accesses at once (no sleep: Monitor.Sync waits until the
// ring buffer has given up everything reserved before it); with the
// Watcher's own-process filter on, the same reads are not kept. Runs where kprobes exist (the test/vm guest).
func TestWatcherSync(t *testing.T) {
	testutil.Require(t, testutil.BPF, testutil.Kprobes)
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	sort.Strings(devs)
	if len(devs) == 0 {
		t.Skip("needs a PCI function")
	}
	dev := filepath.Base(devs[0])
	b, err := pci.ParseBDF(dev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Attach(); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(m)
	w.self = 0 // keep this process's own accesses (a Watcher drops them); the last round restores it
	ctx, cancel := context.WithCancel(t.Context())
	wait, err := w.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = wait() }()
	f, err := os.Open("/sys/bus/pci/devices/" + dev + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for round := range 4 {
		want := 50
		if round == 3 {
			w.mu.Lock()
			w.self = uint32(os.Getpid())
			w.mu.Unlock()
			want = 0
		}
		stop, err := w.Watch(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		buf := make([]byte, 4)
		for i := range n {
			if _, err := f.ReadAt(buf, int64(4*(i%16))); err != nil {
				t.Fatal(err)
			}
		}
		got, err := stop(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("round %d: stop returned %d accesses, want %d", round, len(got), want)
		}
		for i, a := range got {
			if a.PID != uint32(os.Getpid()) || a.Offset != uint32(4*(i%16)) || a.Size != 4 || a.Op != "read" {
				t.Fatalf("round %d access %d: %+v", round, i, a)
			}
		}
	}
}

// TestRunStopsOnCancel: Run returns nil soon after its context ends, with
// Syncs (each wakes Run to drain the ring) racing the end, again and again.
// Run closes its ring-buffer reader itself: closing it from the cancel
// callback crashed inside ringbuf (AvailableBytes on the closed ring) in
// one test/vm run. Needs BPF only (no probes attached).
func TestRunStopsOnCancel(t *testing.T) {
	testutil.Require(t, testutil.BPF)
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, func(*Access) {}) }()
		stop := make(chan struct{})
		syncing := make(chan struct{})
		go func() {
			defer close(syncing)
			for {
				select {
				case <-stop:
					return
				default:
				}
				sctx, scancel := context.WithTimeout(context.Background(), time.Second)
				_ = m.Sync(sctx) // nil, or "not running"/"ended": never a hang or a crash
				scancel()
			}
		}()
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", i, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: Run did not return within 2 s of cancel", i)
		}
		close(stop)
		<-syncing
	}
}

// fprobeBuilt says whether the running kernel has fprobe (CONFIG_FPROBE),
// which kprobe.multi links need: register_fprobe is in /proc/kallsyms.
func fprobeBuilt(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatalf("reading /proc/kallsyms: %v", err)
	}
	return bytes.Contains(b, []byte(" register_fprobe\n"))
}
