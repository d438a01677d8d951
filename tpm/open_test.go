package tpm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"golang.org/x/sys/unix"
)

func TestOpenRejects(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "file")
	os.WriteFile(reg, nil, 0o600)
	for _, spec := range []string{"", "tpm0", reg, filepath.Join(t.TempDir(), "absent"), "tcp:127.0.0.1:1", "unix:" + reg} {
		tp, err := Open(spec)
		if err == nil {
			tp.Close()
			t.Errorf("Open(%q) succeeded", spec)
			continue
		}
		if !errors.Is(err, ErrTPM) {
			t.Errorf("Open(%q): %v does not match ErrTPM", spec, err)
		}
	}
}

// deviceTPM's blocking read/write path, against the simulator behind a
// SOCK_SEQPACKET pair (one read returns one whole message, as on /dev/tpmrm0).
// The real device is proven in test/vm.
func TestDeviceTPMSyscallPath(t *testing.T) {
	_, sim := openSimT(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := fds[1]
	go func() {
		buf := make([]byte, maxResponse)
		for {
			n, err := unix.Read(srv, buf)
			if err != nil || n == 0 {
				unix.Close(srv)
				return
			}
			rsp, err := sim.Send(append([]byte(nil), buf[:n]...))
			if err != nil {
				unix.Close(srv)
				return
			}
			if n == 12 { // the test's marker: reply with a short response
				rsp = rsp[:4]
			}
			unix.Write(srv, rsp)
		}
	}()
	d := &deviceTPM{fd: fds[0], path: "socketpair", buf: make([]byte, maxResponse)}
	r, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(d)
	if err != nil {
		t.Fatalf("GetCapability over the syscall path: %v", err)
	}
	if _, err := r.CapabilityData.Data.AssignedPCR(); err != nil {
		t.Fatal(err)
	}
	exerciseBackend(t, d, DefaultPCR)
	if _, err := d.Send(make([]byte, 12)); err == nil || !errors.Is(err, ErrTPM) {
		t.Errorf("short response accepted: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Send([]byte{1}); err == nil {
		t.Error("Send after Close succeeded")
	}
}
