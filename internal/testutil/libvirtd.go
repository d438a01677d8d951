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
// started is false when libvirtd was already running (left alone).
func StartLibvirtd(t testing.TB) (started bool) {
	t.Helper()
	Require(t, Root, Libvirt)
	lockLibvirtd(t)
	if c, err := net.DialTimeout("unix", LibvirtSocket, time.Second); err == nil {
		c.Close()
		return false // already running: leave it alone
	}
	startDaemon(t, "virtlogd", "/run/virtlogd.pid", "virtlogd", "-d")
	startDaemon(t, "libvirtd", "/run/libvirtd.pid", "libvirtd", "-d")
	waitLibvirtd(t)
	return true
}

func waitLibvirtd(t testing.TB) {
	t.Helper()
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

// RestartLibvirtd stops the libvirtd that StartLibvirtd started (SIGTERM by
// PID, waiting until it is gone) and starts a new one, stopped at cleanup.
// Call it only when StartLibvirtd returned true: it never restarts a
// daemon the tests did not start.
func RestartLibvirtd(t testing.TB) {
	t.Helper()
	pid := readPid("/run/libvirtd.pid")
	if pid <= 0 || !alive(pid) {
		t.Fatal("RestartLibvirtd: no libvirtd started by the tests is running")
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd (pid %d) did not stop within 30 s of SIGTERM", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	startDaemon(t, "libvirtd", "/run/libvirtd.pid", "libvirtd", "-d")
	waitLibvirtd(t)
}

func startDaemon(t testing.TB, name, pidfile string, argv ...string) {
	t.Helper()
	if pid := readPid(pidfile); pid > 0 && alive(pid) {
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
		// Wait until it is really gone (socket and pid file released), so
		// the next test neither talks to a dying daemon nor skips starting it.
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(30 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 100 && alive(pid); i++ {
				time.Sleep(50 * time.Millisecond)
			}
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

// LibvirtdLock serialises tests that use the machine's libvirtd across test
// processes (go test runs packages in parallel): without it one package
// could stop the libvirtd another is using, or both start virtlogd at once.
const LibvirtdLock = "/run/lock/vfio-gate-test-libvirtd.lock"

// lockLibvirtd takes LibvirtdLock for the rest of the test; it is released
// after every cleanup registered later (the daemons it started are stopped
// first).
func lockLibvirtd(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(LibvirtdLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("lock %s: %v", LibvirtdLock, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// alive reports whether pid runs and is not a zombie (PID 1 of a container
// may not reap the daemons that double-forked away from us).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
