package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// SwtpmProc is a running swtpm started by StartSwtpm.
type SwtpmProc struct {
	// Spec is the --tpm value for vfio-gate: "tcp:127.0.0.1:PORT" or "unix:PATH".
	Spec string
	// StateDir holds swtpm's NVRAM.
	StateDir string
}

// StartSwtpm starts a fresh TPM 2.0 swtpm on loopback (unix=false: TCP
// server on a free port P with its control channel on P+1; unix=true: a unix
// socket in a temp dir), already initialised and started
// (--flags not-need-init,startup-clear), and stops it when the test ends.
// Call Require(t, Swtpm) first.
func StartSwtpm(t testing.TB, unix bool) *SwtpmProc {
	t.Helper()
	dir := t.TempDir()
	var server, ctrl, spec string
	if unix {
		sock := filepath.Join(dir, "swtpm.sock")
		server = "type=unixio,path=" + sock
		ctrl = "type=unixio,path=" + filepath.Join(dir, "swtpm.ctrl")
		spec = "unix:" + sock
	} else {
		port := freePortPair(t)
		server = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port)
		ctrl = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1)
		spec = "tcp:127.0.0.1:" + strconv.Itoa(port)
	}
	var out bytes.Buffer
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", server, "--ctrl", ctrl, "--flags", "not-need-init,startup-clear")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start swtpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	network, addr := "tcp", spec[len("tcp:"):]
	if unix {
		network, addr = "unix", spec[len("unix:"):]
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("swtpm exited: %s", out.String())
		default:
		}
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm not listening on %s after 10s: %s", spec, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &SwtpmProc{Spec: spec, StateDir: dir}
}

// freePortPair finds P such that P and P+1 are free on 127.0.0.1.
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free pair of TCP ports")
	return 0
}

// TPMDevice: a kernel TPM resource manager at /dev/tpmrm0 we may use (the
// test/vm guest has a swtpm-backed one). Tests extend only PCR 16 and reset it.
var TPMDevice = Cap{Name: "tpm", Hint: "run inside the test/vm guest (swtpm-backed /dev/tpmrm0), as root", Probe: func() error {
	fi, err := os.Stat("/dev/tpmrm0")
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("/dev/tpmrm0 is not a character device")
	}
	f, err := os.OpenFile("/dev/tpmrm0", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}}
