package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// TestDaemonCommand runs `vfio-gate daemon` in-process over a fixture tree
// with the TPM simulator, drives it with the API client and `status`, and
// stops it by cancelling (as SIGTERM does).
func TestDaemonCommand(t *testing.T) {
	testutil.Require(t, testutil.Root) // the policy must be root-owned; the daemon answers root peers only
	dir := t.TempDir()
	sysDir := filepath.Join(dir, "sys")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(sysDir, 0o755))
	tree, err := sysfstest.New(sysDir)
	must(err)
	must(tree.Add(sysfstest.Function{BDF: "0000:fe:1f.7", Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, IOMMUGroup: 7}))
	pol := filepath.Join(dir, "policy.yaml")
	must(os.WriteFile(pol, []byte("version: 1\ndefaults: {non_confidential: deny-unattested}\nlibvirt: {hotplug: detach}\n"), 0o600))
	sock := filepath.Join(dir, "run", "d.sock")
	common := []string{"--sysfs-root", sysDir, "--policy", pol, "--tpm", "sim", "--state-dir", filepath.Join(dir, "state"),
		"--daemon-socket", sock}

	bad := filepath.Join(dir, "bad.yaml")
	must(os.WriteFile(bad, []byte("version: 1\nlibvirt: {hotplug: maybe}\n"), 0o600))
	if code, _, errs := runCLI(t, "daemon", "--policy", bad, "--tpm", "sim", "--sysfs-root", sysDir, "--no-libvirt",
		"--daemon-socket", filepath.Join(dir, "bad.sock")); code != exitInternal || !strings.Contains(errs, "libvirt.hotplug") {
		t.Fatalf("bad policy: exit %d, %s", code, errs)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var derr bytes.Buffer
	go func() {
		var out bytes.Buffer
		done <- run(ctx, append([]string{"vfio-gate", "daemon", "--no-libvirt", "--lock-dir", filepath.Join(dir, "locks")}, common...),
			strings.NewReader(""), &out, &derr, func(string) string { return "" })
	}()
	c := daemon.NewClient(sock)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.Status(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("daemon did not answer: %s", derr.String())
		}
	}
	b, _ := pci.ParseBDF("0000:fe:1f.7")
	r, err := c.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{b}})
	if err != nil || r.Decision != "deny" || r.Devices[0].Reasons[0].Code != "no-cma" {
		t.Fatalf("check %+v %v", r, err)
	}
	must(c.Release(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{b}}))
	code, out, errs := runCLI(t, "status", "--daemon-socket", sock)
	if code != 0 || !strings.Contains(out, "RELEASED") || !strings.Contains(out, "vm1") || !strings.Contains(out, "no-cma") ||
		!strings.Contains(out, "TDISP: available") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("daemon exit %d: %s", code, derr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if code, _, _ := runCLI(t, "status", "--daemon-socket", sock); code != exitUnavailable {
		t.Fatalf("status without a daemon: exit %d, want %d", code, exitUnavailable)
	}
}
