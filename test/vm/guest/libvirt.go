//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The libvirt-* scenarios (issue 7: a real libvirtd runs the hooks for a
// managed='yes' hostdev on a real detachable PCI function). test/vm/run
// appends the host's Debian libvirtd, virsh, libvirt's qemu driver and
// qemu-system-x86_64 (with their libraries and a minimal /etc/libvirt) to the
// initramfs of the normal boot. In the guest the real `vfio-gate daemon`
// (policy: deny-unattested everywhere) answers the installed hook; libvirtd
// starts a tiny type='qemu' domain whose only device is the e1000e as a
// managed='yes' hostdev. libvirt moves it to vfio-pci between prepare and
// start; the daemon defers it at prepare and denies it (no-cma) at start
// begin; libvirt aborts the start, gives the function back to e1000e and
// calls release end.
//
// Every libvirt-* scenario brings the stack up (once) and starts the domain
// (once) if an earlier one has not, so any subset can be selected; the stack
// is stopped by the harness's cleanups after the last scenario.

const (
	lvDomain     = "vfio-gate-e1000e" // the e1000e as a managed='yes' hostdev
	lvDomainCXL  = "vfio-gate-cxl"    // the CXL type-3 function (DOE, no CMA) as a managed='yes' hostdev
	lvDir        = "/etc/libvirt"
	lvSock       = "/run/libvirt/libvirt-sock"
	lvURI        = "qemu:///system"
	lvState      = "/tmp/vfio-gate-libvirt"
	lvDaemonSock = "/run/vfio-gate/daemon.sock"
	lvTrace      = "/tmp/libvirt-hook-trace"
	lvXMLDir     = "/tmp/libvirt-hook-xml" // the domain XML of each hook call (trace drop-in)
	lvdOut       = "/tmp/libvirtd.out"
	lvdLog       = "/var/log/libvirt/libvirtd.log"
	lvDaemonLog  = "/tmp/vfio-gate-daemon.log"
	lvPolicy     = policyDir + "/policy-libvirt.yaml"
)

// lvPolicyText: no function is allowed without CMA, confidential or not.
const lvPolicyText = `version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: deny-unattested
rules: []
`

// lvTraceHook returns a second qemu.d drop-in that runs before vfio-gate's
// (libvirt runs drop-ins in alphabetical order): it records each hook call
// of the domains in bdfs (domain name -> BDF of its hostdev) with the driver
// that function is bound to at that moment, and saves the domain XML
// libvirt passed on stdin as lvXMLDir/DOMAIN.OP.SUBOP.xml (the last call of
// each kind). lvTraceLines reads the record.
func lvTraceHook(bdfs map[string]string) string {
	var cases strings.Builder
	names := slices.Sorted(maps.Keys(bdfs))
	for _, d := range names {
		fmt.Fprintf(&cases, "%s) bdf=%s ;;\n", d, bdfs[d])
	}
	return `#!/bin/sh
mkdir -p ` + lvXMLDir + `
cat >"` + lvXMLDir + `/$1.$2.$3.xml"
case $1 in
` + cases.String() + `*) exit 0 ;;
esac
d=$(readlink /sys/bus/pci/devices/$bdf/driver)
echo "$1 $2 $3 ${d##*/}" >>` + lvTrace + `
exit 0
`
}

// lvDomainXML: the smallest type='qemu' domain libvirt starts, with the NIC as
// a managed='yes' PCI hostdev. %s are domain, bus, slot, function.
const lvDomainXML = `<domain type='qemu'>
  <name>%s</name>
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

// lvPolicyAllowText: the daemon's second policy, for libvirt-allowed-*:
// non-confidential domains may have unattested functions.
const lvPolicyAllowText = `version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: allow-unattested
rules: []
`

const lvPolicyAllow = policyDir + "/policy-libvirt-allow.yaml"

// libvirtStack is the state the libvirt-* scenarios share.
type libvirtStack struct {
	upErr    error // why the stack did not come up
	libvirtd *exec.Cmd
	lvdDone  chan error
	daemon   *exec.Cmd
	dmnDone  chan error
	dmnArgs  []string // policy and extra flags of the last startDaemon (libvirt-deb-install restores them)
	timings  string
	doms     map[string]*lvDom

	// libvirt-allowed-*: the e1000e domain started under lvPolicyAllow.
	allowTried bool
	allowErr   error // why it is not running
	allowMark  int   // trace lines of lvDomain before that start

	pool *lvPoolRun // libvirt-pool-*: the hostdev network and its domain
}

// lvDom is one defined domain and its one hostdev.
type lvDom struct {
	name    string
	fn      *pciFunc
	hostDrv string // the driver libvirt moves it from and back to

	started  bool   // virsh start ran
	startOut string // its combined output
	startErr error  // its error (nil: the domain started)
	startDur time.Duration
}

// lvUp brings up the daemon, the hooks and libvirtd and defines the domain,
// once.
func (h *Harness) lvUp(ctx context.Context) (*libvirtStack, error) {
	if h.lv != nil {
		return h.lv, h.lv.upErr
	}
	s := &libvirtStack{}
	h.lv = s
	h.cleanups = append(h.cleanups, func() { s.stop(h) })
	s.upErr = s.up(ctx, h)
	return s, s.upErr
}

func (s *libvirtStack) up(ctx context.Context, h *Harness) error {
	for _, f := range []string{"/usr/sbin/libvirtd", "/usr/bin/virsh", "/usr/bin/qemu-system-x86_64"} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is not in the initramfs (test/vm/run packs the libvirt bundle): %w", f, err)
		}
	}
	if !h.has(ctx, "install-hook") || !h.has(ctx, "daemon") || !h.has(ctx, "status") {
		return errors.New("this vfio-gate has no install-hook, daemon or status command")
	}
	nic, err := h.findOne("e1000e endpoint", isNIC)
	if err != nil {
		return err
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 10*time.Second); err != nil {
		return err
	}
	// Earlier scenarios leave the CXL function unbound; libvirt must find
	// it on cxl_pci (a function on no driver is checked at prepare).
	cxl, _, err := h.cxlDOE()
	if err != nil {
		return err
	}
	if cxl.Driver != "cxl_pci" {
		if err := h.bindOverride(ctx, cxl.BDF, ""); err != nil {
			return err
		}
	}
	if _, err := h.waitDriver(ctx, cxl.BDF, "cxl_pci", 10*time.Second); err != nil {
		return fmt.Errorf("binding the CXL function back to cxl_pci: %w", err)
	}
	s.doms = map[string]*lvDom{
		lvDomain:    {name: lvDomain, fn: nic, hostDrv: "e1000e"},
		lvDomainCXL: {name: lvDomainCXL, fn: cxl, hostDrv: "cxl_pci"},
	}
	// The policy and a fresh state directory of this daemon.
	if err := os.MkdirAll(policyDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(lvPolicy, []byte(lvPolicyText), 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(lvState, 0o700); err != nil {
		return err
	}
	// Hooks first: libvirtd reads them when it starts.
	out, errOut, code := h.run(ctx, "install-hook", "--libvirt-dir", lvDir, "--binary", h.VfioGate, "--daemon-socket", lvDaemonSock)
	if code != 0 {
		return fmt.Errorf("install-hook: exit %d: %s %s", code, out, errOut)
	}
	dropIn := filepath.Join(lvDir, "hooks/qemu.d/vfio-gate")
	if st, err := os.Stat(dropIn); err != nil || st.Mode()&0o111 == 0 {
		return fmt.Errorf("install-hook did not leave an executable %s: %v", dropIn, err)
	}
	if err := os.WriteFile(filepath.Join(lvDir, "hooks/qemu.d/00-trace"), []byte(lvTraceHook(map[string]string{lvDomain: nic.BDF, lvDomainCXL: cxl.BDF, lvDomainPool: nic.BDF})), 0o755); err != nil {
		return err
	}

	t0 := time.Now()
	lvd, err := os.Create(lvdOut)
	if err != nil {
		return err
	}
	s.libvirtd = exec.Command("/usr/sbin/libvirtd")
	s.libvirtd.Stdout, s.libvirtd.Stderr = lvd, lvd
	s.libvirtd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}
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
	tSock := time.Since(t0)
	// The qemu driver probes QEMU's capabilities before it answers; this
	// waits for it.
	if out, err := virsh(ctx, "domcapabilities", "--virttype", "qemu"); err != nil || !strings.Contains(out, "vfio") {
		return fmt.Errorf("virsh domcapabilities (QEMU probe): %v: %s", err, clip(out, 300))
	}
	tCaps := time.Since(t0)

	if err := s.startDaemon(ctx, h, lvPolicy); err != nil {
		return err
	}

	for _, d := range s.doms {
		b, err := parseBDF(d.fn.BDF)
		if err != nil {
			return err
		}
		xml := filepath.Join("/tmp", d.name+".xml")
		if err := os.WriteFile(xml, []byte(fmt.Sprintf(lvDomainXML, d.name, b[0], b[1], b[2], b[3])), 0o644); err != nil {
			return err
		}
		if out, err := virsh(ctx, "define", xml); err != nil {
			return fmt.Errorf("virsh define %s: %v: %s", d.name, err, out)
		}
	}
	s.timings = fmt.Sprintf("libvirtd socket after %.1f s, QEMU capabilities probed after %.1f s", tSock.Seconds(), tCaps.Seconds())
	return nil
}

// startDaemon starts `vfio-gate daemon` with policy (and extra flags) and
// waits until it answers status. Its log is appended to lvDaemonLog.
func (s *libvirtStack) startDaemon(ctx context.Context, h *Harness, policy string, extra ...string) error {
	s.dmnArgs = append([]string{policy}, extra...)
	dl, err := os.OpenFile(lvDaemonLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"daemon", "--policy", policy, "--tpm", filepath.Join(h.Dev, "tpmrm0"),
		"--state-dir", lvState, "--daemon-socket", lvDaemonSock, "--libvirt-socket", lvSock, "--libvirt-uri", lvURI,
		"--log-level", "debug"}, extra...)
	s.daemon = exec.Command(h.VfioGate, args...)
	s.daemon.Stdout, s.daemon.Stderr = dl, dl
	if err := s.daemon.Start(); err != nil {
		dl.Close()
		return fmt.Errorf("start vfio-gate daemon: %w", err)
	}
	dl.Close()
	s.dmnDone = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(s.daemon, s.dmnDone)
	if err := s.waitSock(ctx, lvDaemonSock, s.dmnDone, "vfio-gate daemon", 30*time.Second); err != nil {
		return err
	}
	_, err = h.lvStatus(ctx)
	return err
}

// stopDaemon stops the daemon with SIGTERM; it must exit 0 within 15 s.
func (s *libvirtStack) stopDaemon() error {
	if s.daemon == nil || s.daemon.Process == nil {
		return nil
	}
	c, done := s.daemon, s.dmnDone
	s.daemon, s.dmnDone = nil, nil
	_ = c.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("vfio-gate daemon exit after SIGTERM: %w", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = c.Process.Kill()
		return errors.New("vfio-gate daemon did not stop within 15 s of SIGTERM")
	}
}

// waitSock waits until a unix socket accepts a connection, or the process
// exits.
func (s *libvirtStack) waitSock(ctx context.Context, path string, done chan error, what string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("%s exited before it listened on %s: %v", what, path, err)
		case <-ctx.Done():
			return fmt.Errorf("%s: no %s: %w", what, path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v", what, path, limit)
		}
	}
}

// stop ends the daemon and libvirtd (SIGTERM, then SIGKILL).
func (s *libvirtStack) stop(h *Harness) {
	for _, p := range []struct {
		c    *exec.Cmd
		done chan error
		name string
	}{{s.daemon, s.dmnDone, "vfio-gate daemon"}, {s.libvirtd, s.lvdDone, "libvirtd"}} {
		if p.c == nil || p.c.Process == nil {
			continue
		}
		_ = p.c.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			fmt.Fprintf(h.Log, "vmguest: %s stopped: %v\n", p.name, err)
		case <-time.After(15 * time.Second):
			_ = p.c.Process.Kill()
			fmt.Fprintf(h.Log, "vmguest: %s killed after 15 s\n", p.name)
		}
	}
}

// lvStarted runs `virsh start` of the domain once.
func (h *Harness) lvStarted(ctx context.Context, name string) (*lvDom, error) {
	s, err := h.lvUp(ctx)
	if err != nil {
		return nil, fmt.Errorf("libvirt stack not up: %w", err)
	}
	d := s.doms[name]
	if !d.started {
		d.started = true
		t := time.Now()
		d.startOut, d.startErr = virsh(ctx, "start", name)
		d.startDur = time.Since(t)
		fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", name, d.startDur.Round(time.Millisecond), d.startErr, d.startOut)
	}
	return d, nil
}

func virsh(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "/usr/bin/virsh", append([]string{"-c", lvURI}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lvStatusJSON is the part of `vfio-gate status --json` these scenarios read.
type lvStatusJSON struct {
	Domains   map[string][]string `json:"domains"`
	Decisions []struct {
		BDF      string `json:"bdf"`
		Decision string `json:"decision"`
		Reasons  []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"reasons"`
	} `json:"last_decisions"`
	Released []lvRelease `json:"released"`
	Raw      string      `json:"-"`
}

// lvRelease is one entry of status's released.
type lvRelease struct {
	Domain   string   `json:"domain"`
	BDFs     []string `json:"bdfs"`
	Deferred []string `json:"deferred"`
	Recorded bool     `json:"recorded"`
	Errors   []string `json:"errors"`
}

func (h *Harness) lvStatus(ctx context.Context) (*lvStatusJSON, error) {
	out, errOut, code := h.run(ctx, "status", "--json", "--daemon-socket", lvDaemonSock)
	if code != 0 {
		return nil, fmt.Errorf("vfio-gate status --json: exit %d: %s %s", code, out, errOut)
	}
	var st lvStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status --json: %w: %q", err, clip(out, 300))
	}
	st.Raw = out
	return &st, nil
}

// lvTraceLines returns the hook calls for domain the trace drop-in saw:
// "OP SUBOP DRIVER".
func lvTraceLines(domain string) []string {
	b, _ := os.ReadFile(lvTrace)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if rest, ok := strings.CutPrefix(l, domain+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// parseBDF splits DDDD:BB:SS.F.
func parseBDF(bdf string) ([4]string, error) {
	var d, b, s, f string
	if i := strings.IndexByte(bdf, '.'); i > 0 {
		f = bdf[i+1:]
		parts := strings.Split(bdf[:i], ":")
		if len(parts) == 3 {
			d, b, s = parts[0], parts[1], parts[2]
			return [4]string{d, b, s, f}, nil
		}
	}
	return [4]string{}, fmt.Errorf("bad BDF %q", bdf)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// lvDiag is what a failing libvirt-* scenario appends: the tails of
// libvirtd's and the daemon's logs (also dumped in full by lvDump).
func lvDiag() string {
	tail := func(p string) string {
		b, _ := os.ReadFile(p)
		s := strings.TrimSpace(string(b))
		if len(s) > 200 {
			s = "..." + s[len(s)-200:]
		}
		return s
	}
	return fmt.Sprintf(" [libvirtd: %s | %s] [daemon: %s]", tail(lvdOut), tail(lvdLog), tail(lvDaemonLog))
}

// lvDump prints the logs of the libvirt stack after the run (on the serial
// console, after the RESULT lines), for debugging.
func (h *Harness) lvDump() {
	if h.lv == nil {
		return
	}
	for _, f := range lvHookXMLFiles(lvDomainPool) {
		b, _ := os.ReadFile(f)
		fmt.Fprintf(h.Log, "----- %s -----\n%s\n", f, b)
	}
	for _, p := range []string{lvTrace, lvdOut, lvdLog, lvDaemonLog, "/var/log/libvirt/qemu/" + lvDomain + ".log", "/var/log/libvirt/qemu/" + lvDomainCXL + ".log"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		if len(s) > 8000 {
			s = "...\n" + s[len(s)-8000:]
		}
		fmt.Fprintf(h.Log, "----- %s -----\n%s\n", p, s)
	}
}
