//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// libvirt-deb-install (issue 16, "a clean Debian 12 host can go from the .deb
// to a gated virsh start with only the README's install section"): test/vm/run
// builds the .deb with scripts/package and packs its payload (dpkg-deb -x)
// under debRoot, with the package's Version in debVersionFile. This scenario
// uses that payload, not the test build, and follows README.md "## Install":
//
//	apt install ./vfio-gate_*.deb   -> the extraction; the conffiles are copied into /etc/vfio-gate
//	vfio-gate doctor                -> verbatim (the packaged binary, no flags)
//	vfio-gate policy capture ...    -> not run: the e1000e has no CMA; the packaged policy (deny by default) stays
//	vfio-gate install-hook --reload -> verbatim (SIGHUP to the guest's libvirtd)
//	systemctl enable --now vfio-gate -> the unit's ExecStart run as systemd would: its
//	                                   StateDirectory created 0700, NOTIFY_SOCKET set, READY=1 awaited
//
// then `virsh start` of the e1000e domain must be refused by the packaged hook
// with the packaged policy's deny (no-cma). It runs after the other libvirt-*
// scenarios and puts back what it changed: the test daemon (same flags), the
// test build's drop-in, the guest's /etc/vfio-gate files and
// /var/lib/vfio-gate.
const (
	debRoot        = "/pkgroot"
	debBin         = debRoot + "/usr/bin/vfio-gate"
	debVersionFile = "/pkgroot.version"
	debUnitConfig  = "/etc/vfio-gate/vfio-gate.yaml" // the unit's ExecStart --config
	debStateDir    = "/var/lib/vfio-gate"            // the unit's StateDirectory=vfio-gate
	debDaemonLog   = "/tmp/vfio-gate-deb-daemon.log"
	debNotifySock  = "/tmp/vfio-gate-deb-notify.sock"
	debAside       = ".before-deb" // suffix of what the scenario moved aside
)

// debEnv is the environment of the packaged commands (a root shell's PATH:
// install-hook asks `libvirtd --version`).
var debEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C"}

func debRun(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var o, e strings.Builder
	cmd := exec.CommandContext(ctx, debBin, args...)
	cmd.Env = debEnv
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return o.String(), e.String() + err.Error(), -1
		}
		return o.String(), e.String(), ee.ExitCode()
	}
	return o.String(), e.String(), 0
}

// debRestore is what libvirt-deb-install changed, to put back.
type debRestore struct {
	installed []string // files copied from debRoot/etc (absolute guest paths)
	aside     []string // guest paths renamed to PATH+debAside
	daemon    *exec.Cmd
	dmnDone   chan error
}

func libvirtDebInstall(ctx context.Context, h *Harness) (res Result) {
	t0 := time.Now()
	var steps []string
	step := func(name string, t time.Time) {
		steps = append(steps, fmt.Sprintf("%s %.1fs", name, time.Since(t).Seconds()))
	}

	// The packaged binary is dynamically linked (cgo): it must run against
	// the bundle's glibc before anything else is tried.
	want, err := os.ReadFile(debVersionFile)
	if err != nil {
		return failf("no .deb payload in the initramfs (test/vm/run packs it when libvirt-deb-install is selected): %v", err)
	}
	version := strings.TrimSpace(string(want))
	t := time.Now()
	out, errOut, code := debRun(ctx, "version")
	if code != 0 || !strings.Contains(out, version) {
		return failf("the packaged %s does not run in the guest (want version %s): exit %d: %s %s", debBin, version, code, clip(out, 300), clip(errOut, 500))
	}
	step("version", t)

	s, err := h.lvUp(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v%s", err, lvDiag())
	}
	nic := s.doms[lvDomain].fn
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 30*time.Second); err != nil {
		return failf("before the install: %v", err)
	}
	if st, _ := virsh(ctx, "domstate", lvDomain); strings.TrimSpace(st) == "running" {
		return failf("%s is running before the install", lvDomain)
	}

	// Put back what this changes, whatever happens below.
	r := &debRestore{}
	prevArgs := s.dmnArgs
	defer func() {
		if errs := r.restore(ctx, h, s, prevArgs); len(errs) > 0 {
			res = failf("%s; restoring the test state: %s", res.Reason, strings.Join(errs, "; "))
		}
	}()
	if err := s.stopDaemon(); err != nil {
		return failf("stopping the test daemon: %v", err)
	}

	// "apt install": the conffiles into /etc/vfio-gate (the guest's own
	// files moved aside) and a clean-host /var/lib/vfio-gate (absent).
	if err := r.installEtc(); err != nil {
		return failf("installing the conffiles: %v", err)
	}
	if err := r.moveAside(debStateDir); err != nil {
		return failf("%v", err)
	}

	// sudo vfio-gate doctor: before the hook and the daemon, warnings only.
	t = time.Now()
	out, errOut, code = debRun(ctx, "doctor")
	if code != 0 {
		return failf("vfio-gate doctor (packaged, no flags) exit %d before the install steps: %s %s", code, clip(out, 1200), clip(errOut, 300))
	}
	pre, err := debDoctorJSON(ctx)
	if err != nil {
		return failf("%v", err)
	}
	for _, name := range []string{"iommu", "vfio-pci", "tpm", "policy"} {
		if !strings.HasPrefix(pre[name], "ok:") {
			return failf("doctor %s is %q, want ok: %s", name, pre[name], clip(out, 1200))
		}
	}
	step("doctor", t)

	// sudo vfio-gate install-hook --reload
	t = time.Now()
	out, errOut, code = debRun(ctx, "install-hook", "--reload")
	if code != 0 || !strings.Contains(out, "sent SIGHUP to libvirtd") {
		return failf("vfio-gate install-hook --reload: exit %d: %s %s", code, clip(out, 500), clip(errOut, 300))
	}
	dropIn := filepath.Join(lvDir, "hooks/qemu.d/vfio-gate")
	b, err := os.ReadFile(dropIn)
	if err != nil || !(strings.Contains(string(b), "'"+debBin+"' libvirt-hook") || strings.Contains(string(b), " "+debBin+" libvirt-hook")) {
		return failf("the drop-in does not run the packaged %s: %v: %q", debBin, err, b)
	}
	execLine := debExecLine(string(b))
	step("install-hook", t)

	// systemctl enable --now vfio-gate: ExecStart as systemd runs it.
	t = time.Now()
	if err := r.startDaemon(ctx); err != nil {
		return failf("%v", err)
	}
	step("daemon READY=1", t)
	post, err := debDoctorJSON(ctx)
	if err != nil {
		return failf("%v", err)
	}
	for _, name := range []string{"daemon", "libvirt"} {
		if !strings.HasPrefix(post[name], "ok:") {
			return failf("doctor %s after the install is %q, want ok", name, post[name])
		}
	}

	// virsh start under the packaged policy: refused by the packaged hook.
	t = time.Now()
	denyLine, last, err := debRefusedStart(ctx, h, nic.BDF)
	if err != nil {
		return failf("%v", err)
	}
	step("virsh start", t)
	fmt.Fprintf(h.Log, "vmguest: libvirt-deb-install: %s %s; doctor before: %v; after: %v; drop-in: %s; hook: %s\n", debBin, version, pre, post, execLine, denyLine)
	return passf("packaged %s: %s, total %.1f s; doctor exit 0 (%s); drop-in execs %s; unit's ExecStart READY=1; virsh start refused: %s; daemon: %s; e1000e back",
		version, strings.Join(steps, ", "), time.Since(t0).Seconds(), debWarns(pre), debBin, clip(denyLine, 45), last)
}

// debRefusedStart starts the test domain under the packaged install and
// checks the packaged hook refused it (no-cma), the NIC went back to
// e1000e and the daemon's last decision says so: the hook's DENY line and
// that decision ("deny(no-cma)").
func debRefusedStart(ctx context.Context, h *Harness, bdf string) (denyLine, last string, err error) {
	t := time.Now()
	vout, verr := virsh(ctx, "start", lvDomain)
	fmt.Fprintf(h.Log, "vmguest: virsh start %s under the packaged install (%v): %v\n%s\n", lvDomain, time.Since(t).Round(time.Millisecond), verr, vout)
	if verr == nil {
		virsh(ctx, "destroy", lvDomain)
		return "", "", fmt.Errorf("virsh start %s succeeded under the packaged default policy (deny by default): %s", lvDomain, vout)
	}
	deny := "vfio-gate: DENY " + bdf + " no-cma"
	if !strings.Contains(vout, "Hook script execution failed") || !strings.Contains(vout, deny) {
		return "", "", fmt.Errorf("virsh start %s failed (%v) without %q from the hook: %s [daemon: %s]", lvDomain, verr, deny, clip(vout, 600), debTail(debDaemonLog))
	}
	if _, err := h.waitDriver(ctx, bdf, "e1000e", 30*time.Second); err != nil {
		return "", "", fmt.Errorf("after the refused start: %v", err)
	}
	sout, serr, scode := debRun(ctx, "status", "--json")
	var st lvStatusJSON
	if scode != 0 || json.Unmarshal([]byte(sout), &st) != nil {
		return "", "", fmt.Errorf("packaged vfio-gate status --json: exit %d: %s %s", scode, clip(sout, 300), clip(serr, 300))
	}
	for _, d := range st.Decisions {
		if d.BDF == bdf {
			last = d.Decision
			if len(d.Reasons) > 0 {
				last += "(" + d.Reasons[0].Code + ")"
			}
		}
	}
	if last != "deny(no-cma)" {
		return "", "", fmt.Errorf("the packaged daemon's last decision on %s is %q, want deny(no-cma): %s", bdf, last, clip(sout, 500))
	}
	return firstLine(vout[strings.Index(vout, deny):]), last, nil
}

// debDoctorJSON runs the packaged doctor --json: status: message by check.
func debDoctorJSON(ctx context.Context) (map[string]string, error) {
	out, errOut, code := debRun(ctx, "doctor", "--json")
	var rep doctorJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return nil, fmt.Errorf("packaged doctor --json (exit %d): %v: %q %q", code, err, clip(out, 300), clip(errOut, 300))
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Status + ": " + c.Message
	}
	return got, nil
}

// debWarns names the checks of a doctor report that were not ok.
func debWarns(m map[string]string) string {
	var w []string
	for _, n := range []string{"iommu", "vfio-pci", "lockdown", "tpm", "policy", "state-dir", "libvirt", "daemon", "bpf"} {
		if v, ok := m[n]; ok && !strings.HasPrefix(v, "ok:") {
			w = append(w, n+"="+strings.SplitN(v, ":", 2)[0])
		}
	}
	if len(w) == 0 {
		return "all ok"
	}
	return strings.Join(w, " ")
}

// debExecLine is the drop-in's line that runs vfio-gate.
func debExecLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, debBin) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func debTail(p string) string {
	b, _ := os.ReadFile(p)
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// installEtc copies debRoot/etc into /etc as dpkg would unpack the
// conffiles; a guest file in the way is moved aside first.
func (r *debRestore) installEtc() error {
	src := filepath.Join(debRoot, "etc")
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join("/etc", rel)
		if d.IsDir() {
			if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
				r.installed = append(r.installed, dst)
				return os.Mkdir(dst, 0o755)
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := r.moveAside(dst); err != nil {
			return err
		}
		r.installed = append(r.installed, dst)
		return os.WriteFile(dst, b, 0o644)
	})
}

// moveAside renames p to p+debAside when it exists.
func (r *debRestore) moveAside(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.Rename(p, p+debAside); err != nil {
		return fmt.Errorf("moving %s aside: %w", p, err)
	}
	r.aside = append(r.aside, p)
	return nil
}

// startDaemon runs the unit's ExecStart as systemd would: StateDirectory
// created 0700, NOTIFY_SOCKET set (Type=notify), ready on READY=1.
func (r *debRestore) startDaemon(ctx context.Context) error {
	if err := os.MkdirAll("/run/vfio-gate", 0o700); err != nil { // RuntimeDirectory=vfio-gate
		return err
	}
	if err := os.Mkdir(debStateDir, 0o700); err != nil {
		return err
	}
	os.Remove(debNotifySock)
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: debNotifySock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer func() { ns.Close(); os.Remove(debNotifySock) }()
	dl, err := os.Create(debDaemonLog)
	if err != nil {
		return err
	}
	defer dl.Close()
	r.daemon = exec.Command(debBin, "daemon", "--config", debUnitConfig)
	r.daemon.Env = append(append([]string{}, debEnv...), "NOTIFY_SOCKET="+debNotifySock)
	r.daemon.Stdout, r.daemon.Stderr = dl, dl
	if err := r.daemon.Start(); err != nil {
		return fmt.Errorf("start the packaged daemon: %w", err)
	}
	r.dmnDone = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(r.daemon, r.dmnDone)
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ns.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	var msgs []string
	limit := time.After(150 * time.Second) // the unit's TimeoutStartSec
	for {
		select {
		case m, ok := <-got:
			if !ok {
				return fmt.Errorf("notify socket closed; got %q", msgs)
			}
			msgs = append(msgs, strings.ReplaceAll(m, "\n", " "))
			for _, l := range strings.Split(m, "\n") {
				if l == "READY=1" {
					return nil
				}
			}
		case err := <-r.dmnDone:
			r.dmnDone <- err
			return fmt.Errorf("the packaged daemon exited before READY=1: %v; notify %q; log: %s", err, msgs, debTail(debDaemonLog))
		case <-limit:
			return fmt.Errorf("no READY=1 from the packaged daemon within 150 s; notify %q; log: %s", msgs, debTail(debDaemonLog))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// restore stops the packaged daemon, reinstalls the test build's drop-in,
// puts back the guest's files and restarts the test daemon with its flags.
func (r *debRestore) restore(ctx context.Context, h *Harness, s *libvirtStack, prevArgs []string) []string {
	var errs []string
	if r.daemon != nil && r.daemon.Process != nil {
		_ = r.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-r.dmnDone:
			if err != nil {
				errs = append(errs, fmt.Sprintf("packaged daemon exit after SIGTERM: %v", err))
			}
		case <-time.After(15 * time.Second):
			_ = r.daemon.Process.Kill()
			errs = append(errs, "packaged daemon did not stop within 15 s of SIGTERM")
		}
	}
	for i := len(r.installed) - 1; i >= 0; i-- {
		if err := os.Remove(r.installed[i]); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// The packaged daemon's state stays for the dump, next to the guest's.
	if _, err := os.Stat(debStateDir); err == nil {
		if err := os.Rename(debStateDir, debStateDir+".deb"); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, p := range r.aside {
		if err := os.Rename(p+debAside, p); err != nil {
			errs = append(errs, err.Error())
		}
	}
	out, errOut, code := h.run(ctx, "install-hook", "--libvirt-dir", lvDir, "--binary", h.VfioGate, "--daemon-socket", lvDaemonSock)
	if code != 0 {
		errs = append(errs, fmt.Sprintf("test install-hook: exit %d: %s %s", code, out, errOut))
	}
	if len(prevArgs) > 0 {
		if err := s.startDaemon(ctx, h, prevArgs[0], prevArgs[1:]...); err != nil {
			errs = append(errs, "restarting the test daemon: "+err.Error())
		}
	}
	return errs
}
