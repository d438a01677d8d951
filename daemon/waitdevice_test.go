package daemon_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
)

// TestWaitForLateTPM: a TPM device node that appears after the daemon
// started is waited for (up to --tpm-wait), not reported missing at once.
func TestWaitForLateTPM(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dev := filepath.Join(t.TempDir(), "tpmrm0")
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = os.WriteFile(dev, nil, 0o600)
	}()
	start := time.Now()
	daemon.WaitForDevice(t.Context(), dev, 10*time.Second, log, nil)
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Fatalf("returned after %v: want when the node appeared (~300ms)", el)
	}
	if _, err := os.Stat(dev); err != nil {
		t.Fatalf("returned before the node appeared: %v", err)
	}
	start = time.Now()
	daemon.WaitForDevice(t.Context(), filepath.Join(t.TempDir(), "never"), 200*time.Millisecond, log, nil)
	if el := time.Since(start); el < 180*time.Millisecond || el > 5*time.Second {
		t.Fatalf("missing node: returned after %v, want ~200ms", el)
	}
	start = time.Now()
	daemon.WaitForDevice(t.Context(), "tcp:127.0.0.1:1", time.Hour, log, nil)
	if time.Since(start) > time.Second {
		t.Fatal("a non-path TPM was waited for")
	}
}
