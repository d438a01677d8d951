//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/pci"
)

// doeCDAT (issue 8 scenario 2): read the CDAT table through the doe package
// on the real sysfs config file (pci.System, MayDriveDOE, the per-function
// lock, doe.Mailbox.Discover and Exchange) and check its header, checksum
// and structures; it must equal the table the raw kernel-doe-cdat scenario
// read. Needs the CXL function unbound (kernel-doe-discovery did that).
func doeCDAT(ctx context.Context, h *Harness) Result {
	fn, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	bdf, err := pci.ParseBDF(fn.BDF)
	if err != nil {
		return failf("%v", err)
	}
	sys, err := pci.Open(h.Sys, nil)
	if err != nil {
		return failf("%v", err)
	}
	defer sys.Close()
	f, err := sys.Function(bdf)
	if err != nil {
		return failf("%v", err)
	}
	if err := sys.MayDriveDOE(f); err != nil {
		return failf("%s: MayDriveDOE with no driver bound: %v", bdf, err)
	}
	unlock, err := pci.LockFunction(ctx, filepath.Join(os.TempDir(), "vmguest-locks"), bdf)
	if err != nil {
		return failf("lock: %v", err)
	}
	defer unlock()
	cfg, closer, err := f.OpenConfig()
	if err != nil {
		return failf("%v", err)
	}
	defer closer.Close()
	mb := doe.New(cfg, uint16(off), nil)
	feats, err := mb.Discover(ctx)
	if err != nil {
		return failf("%s: doe Discover: %v", bdf, err)
	}
	if !mb.Supports(doe.FeatureCXLCDAT) {
		return failf("%s: doe Discover lists %v, no cxl-cdat", bdf, feats)
	}
	var table []byte
	handle := uint16(0)
	for i := 0; ; i++ {
		if i > maxCDATEntries {
			return failf("%s: more than %d CDAT entries", bdf, maxCDATEntries)
		}
		rsp, err := mb.Exchange(ctx, doe.FeatureCXLCDAT, binary.LittleEndian.AppendUint32(nil, cdatRequest(handle)))
		if err != nil {
			return failf("%s: CDAT handle %d: %v", bdf, handle, err)
		}
		if len(rsp)%4 != 0 {
			return failf("%s: CDAT response of %d bytes is not whole DWs", bdf, len(rsp))
		}
		payload := make([]uint32, len(rsp)/4)
		for j := range payload {
			payload[j] = binary.LittleEndian.Uint32(rsp[4*j:])
		}
		next, entry, err := decodeCDATResponse(payload, i == 0)
		if err != nil {
			return failf("%s: CDAT handle %d: %v", bdf, handle, err)
		}
		table = append(table, entry...)
		if next == 0xffff {
			break
		}
		handle = next
	}
	t, err := checkCDAT(table)
	if err != nil {
		return failf("%s: %v", bdf, err)
	}
	if h.rawCDAT != nil && !bytes.Equal(h.rawCDAT, table) {
		return failf("%s: CDAT through doe (%d bytes) differs from the raw read (%d bytes)", bdf, len(table), len(h.rawCDAT))
	}
	st := mb.Stats()
	return passf("%s: doe package read CDAT (%d bytes, %d structures, checksum ok, equals raw read: %v) in %d config accesses", bdf, t.Length, len(t.Entries), h.rawCDAT != nil, st.Accesses())
}

// auditEvent is one `vfio-gate audit --json` line.
type auditEvent struct {
	PID    uint32  `json:"pid"`
	Comm   string  `json:"comm"`
	Device string  `json:"device"`
	Op     string  `json:"op"`
	Offset uint32  `json:"offset"`
	Size   uint8   `json:"size"`
	Value  *uint32 `json:"value"`
	Path   string  `json:"path"`
	Region string  `json:"region"`
	Attach string  `json:"attach"`
}

// bpfAudit (issue 8 scenario 6): `vfio-gate audit` guards the CXL function;
// this process (another process than the auditor) reads a dword of its
// config space and writes 0 to its DOE Control register (no Go, no Abort: a
// no-op for the device), and reads a dword of the unguarded e1000e. Exactly
// two events must come out, attributed to this PID, with the right op,
// offset, size and value; none for the unguarded device.
func bpfAudit(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "audit"); r != nil {
		return *r
	}
	cxl, off, err := h.cxlDOE()
	if err != nil {
		return failf("%v", err)
	}
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return failf("%v", err)
	}
	aud, err := h.startAudit(ctx, 40*time.Second, "--device", cxl.BDF)
	if err != nil {
		return failf("%v", err)
	}
	defer aud.cancel()

	access := func(bdf string, write bool, at int, v uint32) error {
		c, err := openConfig(h.devPath(bdf, "config"), write)
		if err != nil {
			return err
		}
		defer c.Close()
		if write {
			return c.write32(at, v)
		}
		_, err = c.read32(at)
		return err
	}
	if err := access(nic.BDF, false, 0, 0); err != nil {
		return failf("%v", err)
	}
	if err := access(cxl.BDF, false, 0, 0); err != nil {
		return failf("%v", err)
	}
	if err := access(cxl.BDF, true, off+doeCtrl, 0); err != nil {
		return failf("%v", err)
	}
	werr, events, err := aud.stop(2 * time.Second)
	if err != nil {
		return failf("%v", err)
	}
	me := uint32(os.Getpid())
	want := []auditEvent{
		{PID: me, Device: cxl.BDF, Op: "read", Offset: 0, Size: 4},
		{PID: me, Device: cxl.BDF, Op: "write", Offset: uint32(off + doeCtrl), Size: 4},
	}
	if len(events) != len(want) {
		return failf("audit: %d events, want 2 (exit: %v): %+v; stderr: %s", len(events), werr, events, aud.stderr.String())
	}
	for i, w := range want {
		g := events[i]
		if g.PID != w.PID || g.Device != w.Device || g.Op != w.Op || g.Offset != w.Offset || g.Size != w.Size || g.Comm == "" {
			return failf("audit event %d: %+v, want %+v", i, g, w)
		}
	}
	if events[1].Value == nil || *events[1].Value != 0 {
		return failf("audit write event value %v, want 0", events[1].Value)
	}
	return passf("audit: read %s+0x0 and write %s+0x%x (region %s) by pid %d (%s, path %s); none for unguarded %s",
		cxl.BDF, cxl.BDF, off+doeCtrl, events[1].Region, me, events[0].Comm, events[0].Path, nic.BDF)
}

// goTest returns a scenario that runs a Go test binary built by test/vm/run
// (go test -c, static) inside the guest, for tests that need what only the
// guest has (swtpm-backed /dev/tpmrm0, kprobes, root on a sysfs with DOE).
// Every selected test must run and pass: VFIOGATE_TEST_REQUIRE turns their
// skips into failures.
func goTest(binary, run string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		path := filepath.Join(filepath.Dir(h.VfioGate), binary)
		if _, err := os.Stat(path); err != nil {
			return failf("%s not in the initramfs: %v", binary, err)
		}
		cmd := exec.CommandContext(ctx, path, "-test.run", run, "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "VFIOGATE_TEST_REQUIRE=root,tpm,bpf,kprobes")
		cmd.Dir = os.TempDir()
		out, err := cmd.CombinedOutput()
		var passed []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--- PASS: ") {
				passed = append(passed, strings.Fields(strings.TrimSpace(l))[2])
			}
		}
		if err != nil || strings.Contains(string(out), "--- SKIP") || len(passed) == 0 {
			tail := string(out)
			if len(tail) > 300 {
				tail = tail[len(tail)-300:]
			}
			fmt.Fprintf(h.Log, "%s output:\n%s\n", binary, out)
			return failf("%s -test.run %s: %v, passed %v: %s", binary, run, err, passed, tail)
		}
		return passf("%s: %s", binary, strings.Join(passed, " "))
	}
}

// watchWriter collects a command's stderr and closes seen once a line
// containing want has been written. Safe for the exec copy goroutine.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(strings.Fields(w.buf.String()), " ")
}
