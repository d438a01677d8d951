package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/pci/sysfstest"
)

// TestHelperActivatedDaemon is the child of TestDaemonSocketActivation: a
// daemon process that systemd started with one socket on fd 3.
func TestHelperActivatedDaemon(t *testing.T) {
	args := os.Getenv("VFIOGATE_HELPER_DAEMON_ARGS")
	if args == "" {
		return // not a child: nothing to do
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid())) // what systemd sets for its child
	code := run(context.Background(), append([]string{"vfio-gate"}, strings.Split(args, "\x1f")...), strings.NewReader(""), os.Stdout, os.Stderr, os.Getenv)
	os.Exit(code)
}

// TestDaemonSocketActivation: with vfio-gate.socket, systemd creates the
// socket and passes it (LISTEN_FDS); the daemon serves on it, and leaves it
// in place on exit (systemd owns it). A socket at another path than
// --daemon-socket is refused.
func TestDaemonSocketActivation(t *testing.T) {
	testutil.Require(t, testutil.Root) // the policy must be root-owned; the daemon answers root peers only
	dir := t.TempDir()
	sysDir := filepath.Join(dir, "sys")
	must(t, os.Mkdir(sysDir, 0o755))
	tree, err := sysfstest.New(sysDir)
	must(t, err)
	must(t, tree.Add(sysfstest.Function{BDF: "0000:fe:1f.7", Vendor: 0x8086, Device: 0x10d3, Class: 0x020000, IOMMUGroup: 7}))
	pol := filepath.Join(dir, "policy.yaml")
	must(t, os.WriteFile(pol, []byte("version: 1\ndefaults: {non_confidential: deny-unattested}\n"), 0o600))
	cfg := filepath.Join(dir, "vfio-gate.yaml")
	must(t, os.WriteFile(cfg, []byte("version: 1\n"), 0o600))
	sock := filepath.Join(dir, "run", "daemon.sock")
	must(t, os.Mkdir(filepath.Dir(sock), 0o700))

	// systemd's part: bind the socket (SocketMode=0600), pass it as fd 3.
	ln, err := net.Listen("unix", sock)
	must(t, err)
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	must(t, os.Chmod(sock, 0o600))
	f, err := ul.File()
	must(t, err)
	ln.Close()
	defer f.Close()

	start := func(socketFlag string) (*exec.Cmd, *bytes.Buffer) {
		args := []string{"daemon", "--config", cfg, "--no-libvirt", "--sysfs-root", sysDir, "--policy", pol, "--tpm", "sim:throwaway",
			"--state-dir", filepath.Join(dir, "state"), "--lock-dir", filepath.Join(dir, "locks"), "--daemon-socket", socketFlag, "--log-level", "info"}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperActivatedDaemon$")
		cmd.Env = append(os.Environ(), "VFIOGATE_HELPER_DAEMON_ARGS="+strings.Join(args, "\x1f"), "LISTEN_FDS=1")
		cmd.ExtraFiles = []*os.File{f}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		return cmd, &stderr
	}

	// a socket that is not --daemon-socket: refused
	cmd, stderr := start(filepath.Join(dir, "elsewhere.sock"))
	if err := cmd.Wait(); err == nil || !strings.Contains(stderr.String(), "make ListenStream= and daemon-socket agree") {
		t.Fatalf("mismatched socket: %v\n%s", err, stderr)
	}

	cmd, stderr = start(sock)
	defer cmd.Process.Kill()
	c := daemon.NewClient(sock)
	ctx := t.Context()
	var st *daemon.Status
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, err = c.Status(ctx); err == nil && st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activated daemon not ready: %v\n%s", err, stderr)
		}
	}
	b, _ := pci.ParseBDF("0000:fe:1f.7")
	if r, err := c.Check(ctx, daemon.CheckRequest{BDFs: []pci.BDF{b}}); err != nil || r.Decision != "deny" {
		t.Fatalf("check over the passed socket: %+v %v", r, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, stderr)
	}
	t.Logf("daemon:\n%s", stderr)
	if !strings.Contains(stderr.String(), "from_systemd=true") {
		t.Fatalf("the daemon did not say it serves systemd's socket:\n%s", stderr)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the daemon removed systemd's socket: %v", err)
	}
}
