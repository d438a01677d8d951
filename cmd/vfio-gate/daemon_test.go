package main

import (
	"bytes"
	"context"
	"net"
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
	common := []string{"--sysfs-root", sysDir, "--policy", pol, "--tpm", "sim:throwaway", "--state-dir", filepath.Join(dir, "state"),
		"--daemon-socket", sock}

	bad := filepath.Join(dir, "bad.yaml")
	must(os.WriteFile(bad, []byte("version: 1\nlibvirt: {hotplug: maybe}\n"), 0o600))
	if code, _, errs := runCLI(t, "daemon", "--policy", bad, "--tpm", "sim:throwaway", "--sysfs-root", sysDir, "--no-libvirt",
		"--daemon-socket", filepath.Join(dir, "bad.sock")); code != exitInternal || !strings.Contains(errs, "libvirt.hotplug") {
		t.Fatalf("bad policy: exit %d, %s", code, errs)
	}

	// No silent simulator: a unit that says --tpm sim does not start.
	if code, _, errs := runCLI(t, append([]string{"daemon", "--no-libvirt", "--tpm", "sim"}, common[:4]...)...); code != exitInternal ||
		!strings.Contains(errs, "refusing to record into it") {
		t.Fatalf("daemon --tpm sim: exit %d, %s", code, errs)
	}

	// systemd readiness: READY=1 on NOTIFY_SOCKET once it listens and recovered.
	notes := notifySocket(t, dir)

	// A hook that runs before the daemon is up (boot, restart) waits for it
	// within its budget and gets the daemon's decision, not "not running".
	type hookResult struct {
		code int
		errs string
	}
	hookDone := make(chan hookResult, 1)
	go func() {
		code, _, errs := runCLIWithStdin(t, domainXML, "libvirt-hook", "--budget", "30s", "--daemon-socket", sock, "--", "vm0", "prepare", "begin", "-")
		hookDone <- hookResult{code, errs}
	}()
	time.Sleep(500 * time.Millisecond) // the hook finds no socket yet

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
	var got []string
	for ready := false; !ready; {
		select {
		case n := <-notes:
			got = append(got, n)
			ready = strings.Contains(n, "READY=1")
		case <-time.After(10 * time.Second):
			t.Fatalf("no READY=1 on NOTIFY_SOCKET; got %q", got)
		}
	}
	if !strings.HasPrefix(got[0], "STATUS=recovering") || !strings.Contains(got[len(got)-1], "STATUS=ready") {
		t.Fatalf("notifications %q: want STATUS=recovering..., then READY=1 with STATUS=ready", got)
	}
	select {
	case h := <-hookDone:
		if h.code != 1 || !strings.Contains(h.errs, "DENY 0000:3b:00.0 no-device") || strings.Contains(h.errs, "not running") {
			t.Fatalf("hook started before the daemon: exit %d %q", h.code, h.errs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hook did not finish")
	}
	b, _ := pci.ParseBDF("0000:fe:1f.7")
	r, err := c.Check(ctx, daemon.CheckRequest{Domain: "vm1", BDFs: []pci.BDF{b}})
	if err != nil || r.Decision != "deny" || r.Devices[0].Reasons[0].Code != "no-cma" {
		t.Fatalf("check %+v %v", r, err)
	}
	must(c.Release(ctx, daemon.DomainRequest{Domain: "vm1", BDFs: []pci.BDF{b}}))
	code, out, errs := runCLI(t, "status", "--daemon-socket", sock)
	if code != 0 || !strings.Contains(out, "RELEASED") || !strings.Contains(out, "vm1") || !strings.Contains(out, "no-cma") ||
		!strings.Contains(out, "TDISP: available") || !strings.Contains(out, "TPM: sim (THROWAWAY") || strings.Contains(out, "STARTING") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "status", "--daemon-socket", sock, "--json"); code != 0 || !strings.Contains(out, `"vfio-gate/status/v1"`) {
		t.Fatalf("status --json: exit %d\n%s%s", code, out, errs)
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

// notifySocket listens as systemd's NOTIFY_SOCKET (set for the test) in dir
// and returns the notifications received.
func notifySocket(t *testing.T, dir string) <-chan string {
	t.Helper()
	nsock := filepath.Join(dir, "notify.sock")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nconn.Close() })
	t.Setenv("NOTIFY_SOCKET", nsock)
	notes := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nconn.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	return notes
}
