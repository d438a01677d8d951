package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/spdm"
)

// TestNoLockFileForAMissingFunction: attest and doe of a BDF that does not
// exist fail (unavailable) and leave nothing in the lock directory.
func TestNoLockFileForAMissingFunction(t *testing.T) {
	fx := newDevFixture(t)
	for _, args := range [][]string{
		{"attest", "0000:0f:00.0"},
		{"doe", "discover", "0000:0f:00.0"},
		{"doe", "cdat", "0000:0f:00.0"},
	} {
		code, _, errs := fx.run(t, append(args, "--lock-dir", fx.lockDir)...)
		if code != exitUnavailable {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUnavailable, errs)
		}
		ents, err := os.ReadDir(fx.lockDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("%v left %s in the lock directory", args, e.Name())
		}
	}
}

// TestGroupCommandHelpWithTypo: "doe discovery --help" (a typo for
// discover) is a usage error, not doe's help with exit 0.
func TestGroupCommandHelpWithTypo(t *testing.T) {
	for _, args := range [][]string{{"doe", "discovery", "--help"}, {"doe", "--help", "discovery"}, {"tdisp", "unlock", "-h"}, {"doe", "discovery"}} {
		code, out, errs := runCLI(t, args...)
		if code != exitInternal || !strings.Contains(errs, "unknown command \""+args[1]+"\"") && !strings.Contains(errs, "unknown command \""+args[2]+"\"") {
			t.Errorf("%v: exit %d, stderr %q, want a usage error naming the unknown command", args, code, errs)
		}
		if strings.Contains(out, "Usage:") {
			t.Errorf("%v printed help: %s", args, out)
		}
	}
	for _, args := range [][]string{{"doe", "--help"}, {"doe", "-h"}, {"doe"}, {"doe", "discover", "--help"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, want help (out %q, err %q)", args, code, out, errs)
		}
	}
}

// TestSecondSignalExitsAtOnce: the first SIGTERM cancels the command, the
// second exits without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	canceled := make(chan struct{})
	exited := make(chan int, 1)
	var errw bytes.Buffer
	go onSignals(sigs, func() { close(canceled) }, func(c int) { exited <- c }, &errw)
	sigs <- syscall.SIGTERM
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("first SIGTERM did not cancel")
	}
	select {
	case c := <-exited:
		t.Fatalf("exited (%d) at the first signal", c)
	case <-time.After(50 * time.Millisecond):
	}
	sigs <- syscall.SIGINT
	select {
	case c := <-exited:
		if c != 130 || !strings.Contains(errw.String(), "second interrupt") {
			t.Fatalf("exit %d, stderr %q; want 130 and a note", c, errw.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second signal did not exit")
	}
}

// TestSecondSignalKillsTheProcess runs the real binary blocked where
// cancellation cannot reach (libvirt-hook reading a stdin that never ends)
// and checks that the second SIGTERM ends it at once, with 143.
func TestSecondSignalKillsTheProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "vfio-gate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fifo := filepath.Join(t.TempDir(), "in")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The shell holds the FIFO open for writing (fd 3) and never writes.
	cmd := exec.Command("sh", "-c", `exec "$0" libvirt-hook --daemon-socket /nonexistent vm prepare begin - 3<>"$1" <"$1"`, bin, fifo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Fatalf("after two SIGTERMs: %v, want exit 143", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("still running 10 s after two SIGTERMs")
	}
}

// TestPolicyCaptureBothHashes: a device whose measurement hash differs from
// its base hash (SHA-384 base, SHA-512 measurements, as DMTF's responder
// negotiates) is captured with both, and the captured rule allows it.
func TestPolicyCaptureBothHashes(t *testing.T) {
	fx := newDevFixture(t)
	d := fx.addEmu(t, "0000:01:00.0", emu.Config{Hash: spdm.HashSHA384, MeasHash: spdm.MeasHashSHA512})
	anchor := writeAnchor(t, d, false)
	code, out, errs := fx.run(t, "policy", "capture", "0000:01:00.0", "--trust-anchor", anchor, "--lock-dir", fx.lockDir)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	if !strings.Contains(out, "hash: [sha-384, sha-512]") {
		t.Errorf("capture does not list both hashes:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(path, &policy.LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		t.Fatalf("captured policy does not load: %v\n%s", err, out)
	}
	sys, err := pci.Open(fx.dir, &pci.Options{Geteuid: func() int { return 0 }, ConfigOpener: func(b pci.BDF) (pci.ConfigSpace, io.Closer, error) {
		return fx.Configs[b], io.NopCloser(nil), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	b, _ := pci.ParseBDF("0000:01:00.0")
	f, err := sys.Function(b)
	if err != nil {
		t.Fatal(err)
	}
	roots := pol.TrustAnchors(attest.Identity{VendorID: f.VendorID, DeviceID: f.DeviceID, SubsystemVendorID: f.SubsystemVendorID,
		SubsystemID: f.SubsystemDeviceID, Class: f.Class, BDF: "0000:01:00.0"})
	ev, err := attest.Function(context.Background(), sys, b, &attest.Options{Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Algorithms.BaseHash != "sha-384" || ev.Algorithms.MeasurementHash != "sha-512" {
		t.Fatalf("negotiated %+v, want sha-384 base and sha-512 measurements", ev.Algorithms)
	}
	if v := pol.Evaluate(ev, policy.Input{Confidential: true}); !v.Allow {
		t.Fatalf("the captured rule refuses its own device: %+v", v.Reasons)
	}
}

// TestConfigFIFORefusedAtOnce: a FIFO given as --config is refused with a
// usage error, not waited on (internal/config's TestLoadFIFORefusedAtOnce
// covers the loader; this is the whole command line).
func TestConfigFIFORefusedAtOnce(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		errs string
	}
	done := make(chan result, 1)
	go func() { code, _, errs := runCLI(t, "--config", fifo, "version"); done <- result{code, errs} }()
	select {
	case r := <-done:
		if r.code != exitInternal || !strings.Contains(r.errs, "not a regular file") {
			t.Fatalf("FIFO --config: exit %d, stderr %q; want 1 naming a non-regular file", r.code, r.errs)
		}
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("a FIFO --config still waits after 5 s")
	}
}
