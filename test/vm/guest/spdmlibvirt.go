//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The spdm-libvirt-* scenarios (issue 13): in the SPDM boots, a real
// libvirtd (the host's libvirt 9.0 and QEMU 7.2, the bundle test/vm/run
// appends to these boots' initramfs too) starts confidential domains whose
// one device is an NVMe function as a managed='yes' hostdev, under the
// policy `policy capture` writes for the good device plus
// tdisp.require_lock. libvirt 9.0 refuses <launchSecurity> that QEMU 7.2
// under TCG cannot do, so the domains are marked confidential the other way
// the hook reads: vfio-gate's element in their <metadata>. The daemon defers
// the function at prepare (on nvme), attests and locks its TDI in its own
// SPDM session at start begin (on vfio-pci), moves it to RUN at started
// begin and stops it at release end. The tampered device's domain is
// refused at start begin (measurement-mismatch) and virsh shows why.

const (
	spdmLvGood     = "vfio-gate-nvme-good"
	spdmLvTampered = "vfio-gate-nvme-tampered"
	spdmLvPolicy   = spdmPolicyDir + "/policy-libvirt.yaml"
)

// spdmLvDomainXML: a type='qemu' domain with one managed='yes' PCI hostdev,
// marked confidential in vfio-gate's metadata namespace. %s are name,
// domain, bus, slot, function.
const spdmLvDomainXML = `<domain type='qemu'>
  <name>%s</name>
  <metadata>
    <vfio-gate:gate xmlns:vfio-gate="https://github.com/vfio-gate/vfio-gate/xmlns/libvirt/1" confidential="yes"/>
  </metadata>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/></source>
    </hostdev>
  </devices>
</domain>
`

// spdmLvRun is the state the spdm-libvirt-* scenarios share.
type spdmLvRun struct {
	err      error // why the stack is not up
	good     string
	tampered string
	timings  string

	goodTried bool
	goodOut   string
	goodErr   error
	goodDur   time.Duration
}

// spdmLvUp (once): the captured policy with require_lock, both functions
// back on nvme, the hook, libvirtd, the daemon and the two domains.
func (h *Harness) spdmLvUp(ctx context.Context) (*spdmLvRun, error) {
	if h.spdmLv != nil {
		return h.spdmLv, h.spdmLv.err
	}
	r := &spdmLvRun{}
	h.spdmLv = r
	r.err = r.up(ctx, h)
	return r, r.err
}

func (r *spdmLvRun) up(ctx context.Context, h *Harness) error {
	for _, f := range []string{"/usr/sbin/libvirtd", "/usr/bin/virsh", "/usr/bin/qemu-system-x86_64"} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is not in the initramfs (test/vm/run packs the libvirt bundle for spdm-libvirt-*): %w", f, err)
		}
	}
	if res := h.need(ctx, "policy capture", "daemon", "install-hook", "status", "tdisp state"); res != nil {
		return errors.New(res.Reason)
	}
	var res *Result
	if r.good, res = h.spdmDev(ctx, "good"); res != nil {
		return errors.New(res.Reason)
	}
	if r.tampered, res = h.spdmDev(ctx, "tampered"); res != nil {
		return errors.New(res.Reason)
	}
	// The policy: capture of the good device, its rule requiring a locked TDI.
	out, errOut, code := h.run(ctx, "policy", "capture", r.good, "--trust-anchor", spdmCA, "--name", "qemu-nvme-spdm")
	if code != 0 {
		return fmt.Errorf("policy capture %s: exit %d: %s", r.good, code, errOut)
	}
	lines := strings.SplitAfter(out, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "  - name: ") })
	if i < 0 {
		return fmt.Errorf("policy capture wrote no rule: %q", clip(out, 300))
	}
	pol := strings.Join(slices.Insert(lines, i+1, "    tdisp:\n", "      require_lock: true\n"), "")
	if err := os.MkdirAll(spdmPolicyDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(spdmLvPolicy, []byte(pol), 0o600); err != nil {
		return err
	}
	if out, errOut, code := h.run(ctx, "policy", "check", spdmLvPolicy); code != 0 {
		return fmt.Errorf("policy check %s: exit %d: %s %s", spdmLvPolicy, code, out, errOut)
	}
	// libvirt finds them on nvme, as on a host.
	for _, bdf := range []string{r.good, r.tampered} {
		if err := h.bindOverride(ctx, bdf, ""); err != nil {
			return err
		}
		if _, err := h.waitDriver(ctx, bdf, "nvme", 15*time.Second); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(lvState, 0o700); err != nil {
		return err
	}
	if out, errOut, code := h.run(ctx, "install-hook", "--libvirt-dir", lvDir, "--binary", h.VfioGate, "--daemon-socket", lvDaemonSock); code != 0 {
		return fmt.Errorf("install-hook: exit %d: %s %s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(lvDir, "hooks/qemu.d/00-trace"), []byte(lvTraceHook(map[string]string{spdmLvGood: r.good, spdmLvTampered: r.tampered})), 0o755); err != nil {
		return err
	}
	// The libvirt stack of libvirt.go, with its cleanups and log dump.
	s := &libvirtStack{}
	h.lv = s
	h.cleanups = append(h.cleanups, func() { s.stop(h) })
	t0 := time.Now()
	lvd, err := os.Create(lvdOut)
	if err != nil {
		return err
	}
	s.libvirtd = execLibvirtd(lvd)
	if err := s.libvirtd.Start(); err != nil {
		lvd.Close()
		return fmt.Errorf("start libvirtd: %w", err)
	}
	lvd.Close()
	s.lvdDone = make(chan error, 1)
	go func() { s.lvdDone <- s.libvirtd.Wait() }()
	if err := s.waitSock(ctx, lvSock, s.lvdDone, "libvirtd", 60*time.Second); err != nil {
		return err
	}
	if out, err := virsh(ctx, "domcapabilities", "--virttype", "qemu"); err != nil || !strings.Contains(out, "vfio") {
		return fmt.Errorf("virsh domcapabilities (QEMU probe): %v: %s", err, clip(out, 300))
	}
	tCaps := time.Since(t0)
	if err := s.startDaemon(ctx, h, spdmLvPolicy); err != nil {
		return err
	}
	for name, bdf := range map[string]string{spdmLvGood: r.good, spdmLvTampered: r.tampered} {
		b, err := parseBDF(bdf)
		if err != nil {
			return err
		}
		x := filepath.Join("/tmp", name+".xml")
		if err := os.WriteFile(x, []byte(fmt.Sprintf(spdmLvDomainXML, name, b[0], b[1], b[2], b[3])), 0o644); err != nil {
			return err
		}
		if out, err := virsh(ctx, "define", x); err != nil {
			return fmt.Errorf("virsh define %s: %v: %s", name, err, out)
		}
	}
	r.timings = fmt.Sprintf("libvirtd up and QEMU probed in %.1f s", tCaps.Seconds())
	return nil
}

// spdmLvStartGood runs `virsh start` of the good domain once.
func (h *Harness) spdmLvStartGood(ctx context.Context) (*spdmLvRun, error) {
	r, err := h.spdmLvUp(ctx)
	if err != nil {
		return nil, err
	}
	if !r.goodTried {
		r.goodTried = true
		t := time.Now()
		r.goodOut, r.goodErr = virsh(ctx, "start", spdmLvGood)
		r.goodDur = time.Since(t)
		fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", spdmLvGood, r.goodDur.Round(time.Millisecond), r.goodErr, r.goodOut)
	}
	return r, nil
}

// spdmLvTDI is what the daemon says about bdf's TDI: its entry in status
// (nil: it holds none) and `tdisp state --daemon` (exit code, JSON or
// stderr).
func (h *Harness) spdmLvTDI(ctx context.Context, bdf string) (*lvStatusJSON, map[string]any, int, string, error) {
	st, err := h.lvStatus(ctx)
	if err != nil {
		return nil, nil, 0, "", err
	}
	var doc struct {
		TDIs []map[string]any `json:"tdis"`
	}
	if err := json.Unmarshal([]byte(st.Raw), &doc); err != nil {
		return nil, nil, 0, "", err
	}
	var tdi map[string]any
	for _, t := range doc.TDIs {
		if t["bdf"] == bdf {
			tdi = t
		}
	}
	out, errOut, code := h.run(ctx, "tdisp", "state", "--daemon", bdf, "--json", "--daemon-socket", lvDaemonSock)
	if code != 0 {
		out = errOut
	}
	return st, tdi, code, strings.TrimSpace(out), nil
}

// lastDecision is the daemon's last decision on bdf and its reason codes.
func (st *lvStatusJSON) lastDecision(bdf string) (string, []string) {
	dec, codes := "", []string(nil)
	for _, d := range st.Decisions {
		if d.BDF == bdf {
			dec, codes = d.Decision, nil
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
			}
		}
	}
	return dec, codes
}

// spdmLibvirtConfidentialStart: `virsh start` of the good domain (marked
// confidential in its metadata, no launchSecurity): the hook ran prepare
// (function on nvme: deferred), start begin (on vfio-pci: attested, TDI
// locked in the daemon's session, allowed) and started begin (TDI RUN); the
// domain runs with QEMU holding the function's /dev/vfio group.
func spdmLibvirtConfidentialStart(ctx context.Context, h *Harness) Result {
	r, err := h.spdmLvStartGood(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v%s", err, lvDiag())
	}
	if r.goodErr != nil {
		return failf("virsh start %s: %v: %s%s", spdmLvGood, r.goodErr, clip(r.goodOut, 400), lvDiag())
	}
	trace := lvTraceLines(spdmLvGood)
	want := []string{"prepare begin nvme", "start begin vfio-pci", "started begin vfio-pci"}
	if !slices.Equal(trace[:min(3, len(trace))], want) {
		return failf("hook calls %q, want %q first", trace, want)
	}
	// What the hook read: libvirt kept vfio-gate's metadata element and
	// wrote no launchSecurity.
	x, err := os.ReadFile(filepath.Join(lvXMLDir, spdmLvGood+".prepare.begin.xml"))
	if err != nil || !strings.Contains(string(x), `confidential="yes"`) || strings.Contains(string(x), "launchSecurity") {
		return failf("domain XML at prepare: %v: %s", err, clip(string(x), 400))
	}
	if out, err := virsh(ctx, "domstate", spdmLvGood); err != nil || strings.TrimSpace(out) != "running" {
		return failf("virsh domstate %s: %v: %q, want running", spdmLvGood, err, out)
	}
	st, tdi, code, tdiOut, err := h.spdmLvTDI(ctx, r.good)
	if err != nil {
		return failf("%v", err)
	}
	if tdi == nil || tdi["state"] != "RUN" || tdi["domain"] != spdmLvGood {
		return failf("status tdis entry of %s: %v, want RUN for %s: %s", r.good, tdi, spdmLvGood, clip(st.Raw, 400))
	}
	if code != 0 || !strings.Contains(tdiOut, `"RUN"`) || !strings.Contains(tdiOut, spdmLvGood) {
		return failf("tdisp state --daemon %s: exit %d: %s", r.good, code, clip(tdiOut, 300))
	}
	if dec, _ := st.lastDecision(r.good); dec != "allow" || !slices.Contains(st.Domains[spdmLvGood], r.good) {
		return failf("daemon: last decision on %s %q, domains %v; want allow, held by %s", r.good, dec, st.Domains, spdmLvGood)
	}
	f, err := h.function(r.good)
	if err != nil || f.Driver != "vfio-pci" {
		return failf("while the domain runs: %+v %v, want vfio-pci", f, err)
	}
	group := filepath.Join("/dev/vfio", f.IOMMUGroup)
	pid, err := readTrim("/run/libvirt/qemu/" + spdmLvGood + ".pid")
	if err != nil {
		return failf("QEMU pid file: %v", err)
	}
	fds, _ := filepath.Glob("/proc/" + pid + "/fd/*")
	if !slices.ContainsFunc(fds, func(fd string) bool { l, _ := os.Readlink(fd); return l == group }) {
		return failf("QEMU (pid %s) does not hold %s open", pid, group)
	}
	sid, _ := tdi["session_id"].(float64)
	return passf("%s (metadata confidential=yes) running in %v: hooks %q; TDI of %s RUN in the daemon's session %#08x; QEMU pid %s holds %s; %s",
		spdmLvGood, r.goodDur.Round(time.Millisecond), trace, r.good, uint32(sid), pid, group, r.timings)
}

// spdmLibvirtConfidentialRelease: `virsh destroy` of the running good
// domain: release end stopped the TDI (the daemon holds none and
// `tdisp state --daemon` says so), the release is recorded, libvirt gave
// the function back to nvme.
func spdmLibvirtConfidentialRelease(ctx context.Context, h *Harness) Result {
	r, err := h.spdmLvStartGood(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v%s", err, lvDiag())
	}
	if r.goodErr != nil {
		return failf("the good domain did not start: %v", r.goodErr)
	}
	if out, err := virsh(ctx, "destroy", spdmLvGood); err != nil {
		return failf("virsh destroy %s: %v: %s", spdmLvGood, err, out)
	}
	if _, err := h.waitDriver(ctx, r.good, "nvme", 15*time.Second); err != nil {
		return failf("after virsh destroy: %v", err)
	}
	var rel *lvRelease
	var st *lvStatusJSON
	var tdi map[string]any
	var code int
	var tdiOut string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st, tdi, code, tdiOut, err = h.spdmLvTDI(ctx, r.good); err != nil {
			return failf("%v", err)
		}
		for i := range st.Released {
			if x := &st.Released[i]; x.Domain == spdmLvGood && slices.Contains(x.BDFs, r.good) {
				rel = x
			}
		}
		if rel != nil && tdi == nil || time.Now().After(deadline) {
			break
		}
	}
	if rel == nil || len(rel.Errors) > 0 || !rel.Recorded {
		return failf("release of %s: %+v (status released %+v)", spdmLvGood, rel, st.Released)
	}
	if tdi != nil {
		return failf("the daemon still holds the TDI of %s after release: %v", r.good, tdi)
	}
	if code == 0 {
		return failf("tdisp state --daemon %s after release: exit 0 (%s), want refused: not held", r.good, clip(tdiOut, 200))
	}
	if _, held := st.Domains[spdmLvGood]; held {
		return failf("the daemon still holds %s: %v", spdmLvGood, st.Domains)
	}
	trace := lvTraceLines(spdmLvGood)
	if !slices.ContainsFunc(trace, func(l string) bool { return strings.HasPrefix(l, "release end") }) {
		return failf("hook calls after destroy: %q, no release end", trace)
	}
	return passf("virsh destroy %s: release end stopped the TDI of %s (the daemon holds none; tdisp state --daemon exit %d: %s), release recorded, back on nvme",
		spdmLvGood, r.good, code, clip(tdiOut, 120))
}

// spdmLibvirtTamperedRefused: `virsh start` of the tampered device's
// domain fails at start begin with the daemon's deny (measurement-mismatch)
// in virsh's error; no TDI stays locked; libvirt gave the function back to
// nvme.
func spdmLibvirtTamperedRefused(ctx context.Context, h *Harness) Result {
	r, err := h.spdmLvUp(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v%s", err, lvDiag())
	}
	t := time.Now()
	out, err := virsh(ctx, "start", spdmLvTampered)
	took := time.Since(t)
	fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", spdmLvTampered, took.Round(time.Millisecond), err, out)
	if err == nil {
		return failf("virsh start %s succeeded; want refused", spdmLvTampered)
	}
	if !strings.Contains(out, "measurement-mismatch") || !strings.Contains(out, r.tampered) {
		return failf("virsh start %s: %q does not show measurement-mismatch for %s", spdmLvTampered, clip(out, 400), r.tampered)
	}
	if st, err := virsh(ctx, "domstate", spdmLvTampered); err != nil || strings.TrimSpace(st) != "shut off" {
		return failf("virsh domstate %s: %v: %q, want shut off", spdmLvTampered, err, st)
	}
	if _, err := h.waitDriver(ctx, r.tampered, "nvme", 15*time.Second); err != nil {
		return failf("after the refused start: %v", err)
	}
	st, tdi, code, _, err := h.spdmLvTDI(ctx, r.tampered)
	if err != nil {
		return failf("%v", err)
	}
	if tdi != nil || code == 0 {
		return failf("the daemon holds the tampered TDI: %v (tdisp state --daemon exit %d)", tdi, code)
	}
	dec, codes := st.lastDecision(r.tampered)
	if dec != "deny" || !slices.Contains(codes, "measurement-mismatch") {
		return failf("daemon's last decision on %s: %s %v, want deny measurement-mismatch", r.tampered, dec, codes)
	}
	trace := lvTraceLines(spdmLvTampered)
	if !slices.Contains(trace, "start begin vfio-pci") || slices.ContainsFunc(trace, func(l string) bool { return strings.HasPrefix(l, "started") }) {
		return failf("hook calls %q: want start begin on vfio-pci and no started", trace)
	}
	// virsh shows the hook's stderr after libvirt's own prefix.
	line := out
	if i := strings.Index(out, "DENY "+r.tampered); i >= 0 {
		line = out[i:]
	}
	return passf("virsh start %s refused in %v at start begin, virsh shows: %s; no TDI held, back on nvme", spdmLvTampered, took.Round(time.Millisecond), clip(line, 200))
}

// execLibvirtd is libvirtd as libvirt.go starts it, output to out.
func execLibvirtd(out *os.File) *exec.Cmd {
	c := exec.Command("/usr/sbin/libvirtd")
	c.Stdout, c.Stderr = out, out
	c.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}
	return c
}
