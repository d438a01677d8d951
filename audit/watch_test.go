//go:build linux && amd64

package audit_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// TestWatchUnavailable: a monitor that does not load is an
// *UnavailableError carrying New's error as is.
func TestWatchUnavailable(t *testing.T) {
	_, err := audit.Watch(t.Context(), audit.WatchOptions{Options: audit.Options{Mode: "uprobe"}}, func(*audit.Access) { t.Error("an access") })
	var ue *audit.UnavailableError
	if !errors.As(err, &ue) || err.Error() != `audit: unknown attach mode "uprobe" (want auto, fentry, kprobe-multi or kprobe)` {
		t.Fatalf("Watch with mode uprobe: %v", err)
	}
}

// TestWatch guards one real function for a while and reads its config
// space through sysfs until an access is reported: the guarded function's,
// with its region classified; the watch ends when its duration has passed.
// Runs where kprobes exist (the test/vm guest).
func TestWatch(t *testing.T) {
	testutil.Require(t, testutil.BPF, testutil.Kprobes)
	devs, _ := filepath.Glob("/sys/bus/pci/devices/*")
	sort.Strings(devs)
	if len(devs) == 0 {
		t.Skip("needs a PCI function")
	}
	dev := filepath.Base(devs[0])
	layouts, err := audit.Layouts("/sys", []string{dev})
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Pointer[audit.Access]
	stop := make(chan struct{})
	go func() {
		for seen.Load() == nil {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if f, err := os.Open(devs[0] + "/config"); err == nil {
				f.ReadAt(make([]byte, 4), 0x8)
				f.Close()
			}
		}
	}()
	start := time.Now()
	lost, err := audit.Watch(t.Context(), audit.WatchOptions{Layouts: layouts, Duration: 2 * time.Second}, func(a *audit.Access) {
		c := *a
		seen.CompareAndSwap(nil, &c)
	})
	close(stop)
	if err != nil || lost != 0 || time.Since(start) < 2*time.Second || time.Since(start) > 10*time.Second {
		t.Fatalf("Watch = %d, %v after %v", lost, err, time.Since(start))
	}
	a := seen.Load()
	if a == nil || a.Device != dev || a.Region == "" || a.Region != audit.Classify(a.Offset, a.Size, layouts[dev]) {
		t.Fatalf("access %+v", a)
	}
}
