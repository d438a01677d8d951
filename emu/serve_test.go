package emu

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/socket"
)

// TestDeviceServe: Serve answers spdm-socket discovery, ends with nil when
// its context ends, and with the error when the listener fails.
func TestDeviceServe(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx, ln, nil) }()
	c, err := socket.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if fs, err := doe.Discover(ctx, c); err != nil || len(fs) != 3 || fs[1] != doe.FeatureCMA {
		t.Fatalf("discovery: %v %v", fs, err)
	}
	c.Close()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("stopped by its context: %v", err)
	}
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := d.Serve(ctx, ln, nil); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("closed listener: %v", err)
	}
}

// TestSettingsWriteFiles: the anchors always, the public keys only with
// PublicKeyOnly; named files where the settings name them, else temporary
// ones.
func TestSettingsWriteFiles(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := defaults()
	s.WriteCA = filepath.Join(dir, "ca.pem")
	ca, pub, err := s.WriteFiles(d)
	if b, _ := os.ReadFile(ca); err != nil || ca != s.WriteCA || pub != "" || string(b) != string(d.AnchorsPEM()) {
		t.Fatalf("anchors only: %q %q %v", ca, pub, err)
	}
	s = defaults()
	s.PublicKeyOnly, s.WritePublicKey = true, filepath.Join(dir, "keys.pem")
	ca, pub, err = s.WriteFiles(d)
	if err != nil || pub != s.WritePublicKey || !strings.Contains(filepath.Base(ca), "vfio-gate-emu-ca-") {
		t.Fatalf("public keys: %q %q %v", ca, pub, err)
	}
	t.Cleanup(func() { os.Remove(ca) })
	want, _ := d.PublicKeysPEM()
	if b, _ := os.ReadFile(pub); len(want) == 0 || string(b) != string(want) {
		t.Fatalf("%s holds %q, want %q", pub, b, want)
	}
	s.WriteCA, s.WritePublicKey = filepath.Join(dir, "ca2.pem"), filepath.Join(dir, "no-such-dir", "keys.pem")
	if _, _, err := s.WriteFiles(d); err == nil {
		t.Fatal("a key file that cannot be written")
	}
}
