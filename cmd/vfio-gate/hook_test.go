package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLIWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := run(context.Background(), append([]string{"vfio-gate"}, args...), strings.NewReader(stdin), &out, &errw,
		func(string) string { return "" })
	checkJSONOut(t, args, out.String())
	return code, out.String(), errw.String()
}

const domainXML = `<domain type='kvm'><name>vm1</name><devices>
<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev>
</devices></domain>`

func TestLibvirtHookDaemonDownDenies(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errs := runCLIWithStdin(t, domainXML, "libvirt-hook", "--budget", "1s", "--daemon-socket", sock, "vm1", "prepare", "begin", "-")
	if code != 1 || !strings.Contains(errs, "vfio-gate daemon is not running (systemctl start vfio-gate)") {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
	if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("want one concise line, got %q", errs)
	}
	code, _, errs = runCLIWithStdin(t, domainXML, "--daemon-socket", sock, "libvirt-hook", "vm1", "stopped", "end", "-")
	if code != 0 || errs != "" {
		t.Fatalf("stopped: exit %d %q", code, errs)
	}
}

func TestStatusDaemonDown(t *testing.T) {
	code, _, errs := runCLI(t, "status", "--daemon-socket", filepath.Join(t.TempDir(), "x.sock"))
	if code != exitUnavailable || !strings.Contains(errs, "not running") {
		t.Fatalf("exit %d %q", code, errs)
	}
}

func TestInstallHookCLI(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, "install-hook", "--libvirt-dir", dir, "--binary", "/usr/local/bin/vfio-gate")
	if code != 0 || !strings.Contains(out, "installed "+filepath.Join(dir, "hooks/qemu.d/vfio-gate")) {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "hooks/qemu.d/vfio-gate")); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "install-hook", "--libvirt-dir", dir, "--binary", "/usr/local/bin/vfio-gate", "--json")
	if code != 0 || !strings.Contains(out, `"drop_in"`) {
		t.Fatalf("install --json exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, "uninstall-hook", "--libvirt-dir", dir, "--json")
	if code != 0 || !strings.Contains(out, `"removed"`) {
		t.Fatalf("uninstall exit %d %q", code, out)
	}
}

func TestAuditNeedsDevice(t *testing.T) {
	code, _, errs := runCLI(t, "audit")
	if code != exitInternal || !strings.Contains(errs, "--device") {
		t.Fatalf("exit %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "audit", "--device", "../etc")
	if code != exitInternal || !strings.Contains(errs, "malformed PCI address") {
		t.Fatalf("exit %d %q", code, errs)
	}
	// An unknown attach mode is a usage error, before anything is loaded.
	code, _, errs = runCLI(t, "audit", "--device", "0000:00:03.0", "--attach", "uprobe")
	if code != exitInternal || !strings.Contains(errs, "want auto, fentry, kprobe-multi or kprobe") {
		t.Fatalf("exit %d %q", code, errs)
	}
}
