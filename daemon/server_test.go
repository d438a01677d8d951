package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
)

type fakeBackend struct {
	lastCheck CheckRequest
	released  []DomainRequest
}

func (f *fakeBackend) Check(_ context.Context, req CheckRequest) (*CheckResponse, error) {
	f.lastCheck = req
	if len(req.BDFs) == 0 {
		return nil, &APIError{Code: "bad-request", Message: "no devices", Status: 400}
	}
	r := &CheckResponse{Decision: "allow"}
	for _, b := range req.BDFs {
		r.Devices = append(r.Devices, DeviceDecision{BDF: b, Decision: "allow"})
	}
	return r, nil
}
func (f *fakeBackend) Bind(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	return f.Check(ctx, req)
}
func (f *fakeBackend) Release(_ context.Context, req DomainRequest) error {
	f.released = append(f.released, req)
	return nil
}
func (f *fakeBackend) StartDomain(context.Context, DomainRequest) error { return nil }
func (f *fakeBackend) TDISPLock(_ context.Context, r TDIRequest) (*TDIStatus, error) {
	return &TDIStatus{BDF: r.BDF, State: "CONFIG_LOCKED"}, nil
}
func (f *fakeBackend) TDISPStart(_ context.Context, r TDIRequest) (*TDIStatus, error) {
	return &TDIStatus{BDF: r.BDF, State: "RUN"}, nil
}
func (f *fakeBackend) TDISPStop(_ context.Context, r TDIRequest) (*TDIStatus, error) {
	return &TDIStatus{BDF: r.BDF, State: "CONFIG_UNLOCKED"}, nil
}
func (f *fakeBackend) TDISPState(_ context.Context, r TDIRequest) (*TDIStatus, error) {
	return nil, errors.New("boom")
}
func (f *fakeBackend) Status(context.Context) (*Status, error) {
	return &Status{Policy: "/etc/vfio-gate/policy.yaml"}, nil
}

func startServer(t *testing.T, b Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "daemon.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, b, ServerOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

func TestAPIRoundTrip(t *testing.T) {
	fb := &fakeBackend{}
	sock := startServer(t, fb)
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	c := NewClient(sock)
	ctx := context.Background()
	b, _ := pci.ParseBDF("0000:3b:00.0")
	r, err := c.Check(ctx, CheckRequest{Domain: "vm1", Confidential: true, BDFs: []pci.BDF{b}})
	if os.Geteuid() != 0 {
		// Our own uid is not root: the daemon must refuse us.
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "forbidden" {
			t.Fatalf("non-root peer: %v", err)
		}
		return
	}
	if err != nil || r.Decision != "allow" || len(r.Devices) != 1 || r.Devices[0].BDF != b {
		t.Fatalf("check: %+v %v", r, err)
	}
	if !fb.lastCheck.Confidential || fb.lastCheck.Domain != "vm1" {
		t.Fatalf("backend saw %+v", fb.lastCheck)
	}
	var ae *APIError
	if _, err := c.Check(ctx, CheckRequest{}); !errors.As(err, &ae) || ae.Code != "bad-request" || ae.Status != 400 {
		t.Fatalf("empty check: %v", err)
	}
	if s, err := c.TDISP(ctx, PathTDISPLock, TDIRequest{BDF: b}); err != nil || s.State != "CONFIG_LOCKED" {
		t.Fatalf("lock: %+v %v", s, err)
	}
	if _, err := c.TDISP(ctx, PathTDISPState, TDIRequest{BDF: b}); !errors.As(err, &ae) || ae.Code != "internal" {
		t.Fatalf("backend error: %v", err)
	}
	if err := c.Release(ctx, DomainRequest{Domain: "vm1"}); err != nil || len(fb.released) != 1 {
		t.Fatalf("release %v %v", err, fb.released)
	}
	if s, err := c.Status(ctx); err != nil || s.Policy == "" {
		t.Fatalf("status %+v %v", s, err)
	}
	// Unknown JSON fields are refused.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://x"+PathCheck, "application/json", strings.NewReader(`{"bdfs":["0000:3b:00.0"],"allow_everything":true}`))
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("unknown field: %v %v", resp, err)
	}
	resp.Body.Close()
	// A hostile BDF is rejected by the strict parser before any backend call.
	resp, err = hc.Post("http://x"+PathCheck, "application/json", strings.NewReader(`{"bdfs":["../../../etc"]}`))
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("bad bdf: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	sock := startServer(t, &fakeBackend{})
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second Listen: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln2.Close()
}

func TestClientDaemonDown(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

func TestAllowed(t *testing.T) {
	if allowed(nil, nil) || !allowed(&unix.Ucred{Uid: 0}, nil) || allowed(&unix.Ucred{Uid: 1000}, nil) || !allowed(&unix.Ucred{Uid: 1000}, []uint32{1000}) {
		t.Fatal("allowed() wrong")
	}
}

// TestNonRootPeerRefused runs a real client process as uid 65534 against the
// socket (made reachable for the test) and checks SO_PEERCRED refuses it.
func TestNonRootPeerRefused(t *testing.T) {
	testutil.Require(t, testutil.Root)
	if os.Getenv("VFIOGATE_DAEMON_CHILD") != "" {
		return
	}
	dir, err := os.MkdirTemp("/tmp", "vg-daemon-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "d.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	// Open the path to everyone so only SO_PEERCRED stands in the way.
	if err := errors.Join(os.Chmod(dir, 0o755), os.Chmod(sock, 0o666)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, ln, &fakeBackend{}, ServerOptions{})
	cmd := exec.Command("/usr/bin/env", "python3", "-c", fmt.Sprintf(`
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(%q)
s.sendall(b"GET /v1/status HTTP/1.0\r\nHost: x\r\n\r\n")
print(s.recv(4096).decode().split("\r\n")[0])`, sock))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot run a client as uid 65534: %v %s", err, out)
	}
	if !strings.Contains(string(out), "403") {
		t.Fatalf("non-root peer got %q, want 403", out)
	}
}
