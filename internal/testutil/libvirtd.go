package testutil

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// LibvirtSocket is libvirtd's read-write socket.
const LibvirtSocket = "/var/run/libvirt/libvirt-sock"

// StartLibvirtd makes sure virtlogd and libvirtd run (without systemd),
// starting them if needed; what it started it stops by PID at cleanup.
func StartLibvirtd(t testing.TB) {
	t.Helper()
	Require(t, Root, Libvirt)
	if c, err := net.DialTimeout("unix", LibvirtSocket, time.Second); err == nil {
		c.Close()
		return // already running: leave it alone
	}
	startDaemon(t, "virtlogd", "/run/virtlogd.pid", "virtlogd", "-d")
	startDaemon(t, "libvirtd", "/run/libvirtd.pid", "libvirtd", "-d")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("unix", LibvirtSocket, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("libvirtd did not open %s within 20 s", LibvirtSocket)
}

func startDaemon(t testing.TB, name, pidfile string, argv ...string) {
	t.Helper()
	if pid := readPid(pidfile); pid > 0 && syscall.Kill(pid, 0) == nil {
		return
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("start %s: %v: %s", name, err, out)
	}
	var pid int
	for i := 0; i < 100 && pid == 0; i++ {
		pid = readPid(pidfile)
		time.Sleep(50 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatalf("%s started but wrote no %s", name, pidfile)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
