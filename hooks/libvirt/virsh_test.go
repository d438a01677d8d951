package libvirt_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// A PCI address that exists on no machine this runs on: if the gate ever
// wrongly allowed, libvirt would fail on the missing device rather than take
// a real host device away.
const ghostBDF = "0000:fe:1f.7"

func buildVfioGate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vfio-gate")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/vfio-gate/vfio-gate/cmd/vfio-gate")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestVirshStartBlockedByHook installs the hook into the real /etc/libvirt,
// starts a real libvirtd, and checks that `virsh start` of a domain with a PCI
// hostdev is refused with the hook's reason, and that release is called.
func TestVirshStartBlockedByHook(t *testing.T) {
	testutil.Require(t, testutil.Root, testutil.Libvirt, testutil.HostVFIO)
	bin := buildVfioGate(t)
	// The hook talks to a daemon socket where nothing listens: prepare must deny.
	sock := filepath.Join(t.TempDir(), "daemon.sock")
	res, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: "/etc/libvirt", Binary: bin, DaemonSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := lvhook.UninstallHook("/etc/libvirt"); err != nil {
			t.Errorf("uninstall: %v", err)
		}
	})
	testutil.StartLibvirtd(t)
	hupLibvirtd(t) // pick up the hook if libvirtd was already running

	defineGhostDomain(t, "vfio-gate-test")
	out, err := exec.Command("virsh", "-c", "qemu:///system", "start", "vfio-gate-test").CombinedOutput()
	if err == nil {
		t.Fatalf("virsh start succeeded; the hook should have refused it:\n%s", out)
	}
	msg := string(out)
	if !strings.Contains(msg, "Hook script execution failed") || !strings.Contains(msg, "vfio-gate daemon is not running") {
		t.Fatalf("virsh start failed, but not with the hook's reason:\n%s", msg)
	}
	t.Logf("virsh: %s", strings.TrimSpace(msg))
	_ = res
}

func virsh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
}

func hupLibvirtd(t *testing.T) {
	b, err := os.ReadFile("/run/libvirtd.pid")
	if err != nil {
		t.Fatalf("libvirtd pid: %v", err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // libvirtd re-reads hooks asynchronously
}

// defineGhostDomain defines a TCG domain named name with a managed='yes'
// hostdev at 0000:fe:1f.7, and destroys and undefines it at cleanup.
func defineGhostDomain(t *testing.T, name string) {
	t.Helper()
	xml := `<domain type='qemu'>
  <name>` + name + `</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0xfe' slot='0x1f' function='0x7'/></source>
    </hostdev>
  </devices>
</domain>`
	f := filepath.Join(t.TempDir(), "dom.xml")
	if err := os.WriteFile(f, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	virsh(t, "define", f)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", "qemu:///system", "destroy", name).Run()
		exec.Command("virsh", "-c", "qemu:///system", "undefine", name).Run()
	})
}
