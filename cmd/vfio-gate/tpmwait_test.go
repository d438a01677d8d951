package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWaitForLateTPM: a TPM device node that appears after the daemon
// started is waited for (up to --tpm-wait), not reported missing at once.
func TestWaitForLateTPM(t *testing.T) {
	g := &globals{log: slog.New(slog.DiscardHandler)}
	dev := filepath.Join(t.TempDir(), "tpmrm0")
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = os.WriteFile(dev, nil, 0o600)
	}()
	start := time.Now()
	if err := waitForDevice(t.Context(), g, dev, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Fatalf("returned after %v: want when the node appeared (~300ms)", el)
	}
	if _, err := os.Stat(dev); err != nil {
		t.Fatalf("returned before the node appeared: %v", err)
	}
	start = time.Now()
	_ = waitForDevice(t.Context(), g, filepath.Join(t.TempDir(), "never"), 200*time.Millisecond)
	if el := time.Since(start); el < 180*time.Millisecond || el > 5*time.Second {
		t.Fatalf("missing node: returned after %v, want ~200ms", el)
	}
	start = time.Now()
	_ = waitForDevice(t.Context(), g, "tcp:127.0.0.1:1", time.Hour)
	if time.Since(start) > time.Second {
		t.Fatal("a non-path TPM was waited for")
	}
}
