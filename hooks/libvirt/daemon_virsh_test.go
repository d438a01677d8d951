package libvirt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

const daemonTestPolicy = `version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: deny-unattested
rules: []
`

// startDaemon runs a real `vfio-gate daemon` process and waits for its
// socket; it is stopped with SIGTERM (and must exit 0) by the returned func.
func startDaemon(t *testing.T, bin string, args ...string) (sock string, log *bytes.Buffer, stop func()) {
	t.Helper()
	dir := t.TempDir()
	sock = filepath.Join(dir, "run", "daemon.sock")
	log = &bytes.Buffer{}
	cmd := exec.Command(bin, append([]string{"daemon", "--daemon-socket", sock, "--log-level", "info"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon exit: %v\n%s", err, log)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("daemon did not stop within 10 s of SIGTERM\n%s", log)
		}
	}
	t.Cleanup(stop)
	c := daemon.NewClient(sock)
	for deadline := time.Now().Add(15 * time.Second); ; {
		select {
		case err := <-done:
			t.Fatalf("daemon exited: %v\n%s", err, log)
		default:
		}
		if _, err := c.Status(context.Background()); err == nil {
			return sock, log, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering on %s after 15 s\n%s", sock, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVirshStartDeniedByDaemon: a real daemon (fixture sysfs tree whose
// ghost function has no DOE, a deny-unattested policy, swtpm) answers the
// installed hook; virsh start fails with the reason code; libvirt's release
// reaches the daemon; preflight gives the same verdict, through the daemon
// and in-process.
func TestVirshStartDeniedByDaemon(t *testing.T) {
	testutil.Require(t, testutil.Root, testutil.Libvirt, testutil.Swtpm, testutil.HostVFIO)
	bin := buildVfioGate(t)
	tp := testutil.StartSwtpm(t, false)
	dir := t.TempDir()
	sysDir := filepath.Join(dir, "sys")
	if err := os.Mkdir(sysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := sysfstest.New(sysDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Add(sysfstest.Function{BDF: ghostBDF, Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, IOMMUGroup: 77}); err != nil {
		t.Fatal(err)
	}
	polDir := filepath.Join(dir, "etc")
	if err := os.Mkdir(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(polDir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(daemonTestPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	state, locks := filepath.Join(dir, "state"), filepath.Join(dir, "locks")
	common := []string{"--sysfs-root", sysDir, "--policy", pol, "--tpm", tp.Spec, "--state-dir", state, "--lock-dir", locks}

	// A bad policy: the daemon refuses to start (exit 1).
	bad := filepath.Join(polDir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nmode: relaxed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "daemon", "--policy", bad, "--sysfs-root", sysDir, "--tpm", tp.Spec, "--state-dir", state,
		"--daemon-socket", filepath.Join(dir, "bad.sock"), "--no-libvirt").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "mode") {
		t.Fatalf("daemon with a bad policy: %v\n%s", err, out)
	}

	// The hook goes in before libvirtd starts (it reads hooks at start; a
	// SIGHUP is only for a libvirtd that was already running).
	sock, dlog, stop := startDaemon(t, bin, common...)
	if _, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: "/etc/libvirt", Binary: bin, DaemonSocket: sock}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := lvhook.UninstallHook("/etc/libvirt"); err != nil {
			t.Errorf("uninstall: %v", err)
		}
	})
	testutil.StartLibvirtd(t)
	hupLibvirtd(t)

	const name = "vfio-gate-daemon-test"
	defineGhostDomain(t, name)
	out, err = exec.Command("virsh", "-c", "qemu:///system", "start", name).CombinedOutput()
	if err == nil {
		t.Fatalf("virsh start succeeded; the daemon should have denied it:\n%s", out)
	}
	msg := string(out)
	if !strings.Contains(msg, "Hook script execution failed") || !strings.Contains(msg, ghostBDF) ||
		!(strings.Contains(msg, "no-cma") || strings.Contains(msg, "unattested")) {
		t.Fatalf("virsh start failed, but not with the daemon's reason:\n%s\ndaemon log:\n%s", msg, dlog)
	}
	t.Logf("virsh: %s", strings.TrimSpace(msg))

	// libvirt calls release end after the aborted start; the daemon records it.
	c := daemon.NewClient(sock)
	var st *daemon.Status
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err = c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Released) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Released) != 1 || st.Released[0].Domain != name || len(st.Domains) != 0 {
		t.Fatalf("daemon status after the aborted start: %+v\ndaemon log:\n%s", st, dlog)
	}
	if len(st.Decisions) != 1 || st.Decisions[0].Decision != "deny" || st.Decisions[0].BDF.String() != ghostBDF {
		t.Fatalf("last decisions %+v", st.Decisions)
	}

	// Preflight through the daemon, then in-process once the daemon is gone.
	preflight := func(via string) {
		cmd := exec.Command(bin, append([]string{"libvirt", "preflight", name, "--daemon-socket", sock}, common...)...)
		out, err := cmd.CombinedOutput()
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), ghostBDF) ||
			!(strings.Contains(string(out), "no-cma") || strings.Contains(string(out), "unattested")) || !strings.Contains(string(out), via) ||
			!strings.Contains(string(out), "8086:10d3") {
			t.Fatalf("preflight (%s): %v\n%s", via, err, out)
		}
		t.Logf("preflight (%s):\n%s", via, out)
	}
	out, err = exec.Command(bin, "status", "--daemon-socket", sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RELEASED") || !strings.Contains(string(out), name) {
		t.Fatalf("status: %v\n%s", err, out)
	}
	preflight("decided by the daemon")
	stop()
	preflight("checking in-process")
}

// TestHookPhasesThroughDaemon: the real hook command against a real daemon
// (fixture sysfs tree, swtpm, no libvirtd), playing libvirt's part: a
// managed='yes' function on its host driver is deferred at prepare, denied
// mailbox-owned at start begin while still there, and checked (allowed by
// an allow-unattested policy) at start begin once moved to vfio-pci.
func TestHookPhasesThroughDaemon(t *testing.T) {
	testutil.Require(t, testutil.Root, testutil.Swtpm)
	bin := buildVfioGate(t)
	tp := testutil.StartSwtpm(t, false)
	dir := t.TempDir()
	sysDir := filepath.Join(dir, "sys")
	if err := os.Mkdir(sysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := sysfstest.New(sysDir)
	if err != nil {
		t.Fatal(err)
	}
	const fn = "0000:fe:1e.0"
	for _, d := range []string{"vfio-pci", "e1000e"} {
		if err := tree.Driver(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := tree.Add(sysfstest.Function{BDF: fn, Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, IOMMUGroup: 78, Driver: "e1000e"}); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(strings.Replace(daemonTestPolicy, "non_confidential: deny-unattested", "non_confidential: allow-unattested", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock, dlog, _ := startDaemon(t, bin, "--sysfs-root", sysDir, "--policy", pol, "--tpm", tp.Spec,
		"--state-dir", filepath.Join(dir, "state"), "--lock-dir", filepath.Join(dir, "locks"), "--no-libvirt")
	xml := `<domain type='qemu'><name>vm-phases</name><devices>
  <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0xfe' slot='0x1e' function='0x0'/></source></hostdev>
</devices></domain>`
	hook := func(op, sub string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, "libvirt-hook", "--daemon-socket", sock, "vm-phases", op, sub, "-")
		cmd.Stdin = strings.NewReader(xml)
		cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin", "HOME=/"} // what libvirt passes
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("hook %s %s: %v", op, sub, err)
		return 0, ""
	}
	c := daemon.NewClient(sock)
	status := func() *daemon.Status {
		t.Helper()
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if code, out := hook("prepare", "begin"); code != 0 {
		t.Fatalf("prepare: exit %d %s\n%s", code, out, dlog)
	}
	if st := status(); len(st.Devices) != 1 || st.Devices[0].Decision != daemon.DecisionDeferred || st.Devices[0].Driver != "e1000e" {
		t.Fatalf("after prepare: devices %+v", st.Devices)
	}
	code, out := hook("start", "begin")
	if code != 1 || !strings.Contains(out, "DENY "+fn+" mailbox-owned") || !strings.Contains(out, "still on its host driver e1000e") {
		t.Fatalf("start on the host driver: exit %d %s", code, out)
	}
	t.Logf("start begin, still on e1000e: %s", strings.TrimSpace(out))
	if code, _ := hook("release", "end"); code != 0 {
		t.Fatalf("release: exit %d", code)
	}
	// Again, now with libvirt's move to vfio-pci between prepare and start.
	if code, out := hook("prepare", "begin"); code != 0 {
		t.Fatalf("prepare 2: exit %d %s", code, out)
	}
	if err := tree.Unbind(fn); err != nil {
		t.Fatal(err)
	}
	if err := tree.Bind(fn, "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	if code, out := hook("start", "begin"); code != 0 {
		t.Fatalf("start on vfio-pci: exit %d %s\n%s", code, out, dlog)
	}
	if code, out := hook("started", "begin"); code != 0 {
		t.Fatalf("started: exit %d %s", code, out)
	}
	st := status()
	if len(st.Domains["vm-phases"]) != 1 || st.Devices[0].Decision != "allow" {
		t.Fatalf("after start: %+v", st)
	}
	if code, _ := hook("release", "end"); code != 0 {
		t.Fatalf("release 2: exit %d", code)
	}
	st = status()
	if len(st.Domains) != 0 || len(st.Released) != 2 {
		t.Fatalf("after release: %+v", st)
	}
	var verdicts []string
	for _, d := range st.Decisions {
		verdicts = append(verdicts, d.Decision)
	}
	if strings.Join(verdicts, ",") != "deferred,deny,deferred,allow" {
		t.Fatalf("decisions %v", verdicts)
	}
}
