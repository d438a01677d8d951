package conn

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/policy"
)

// DaemonWatch makes no watcher (and says so) without libvirtd's socket, a
// DaemonWatcher when it exists.
func TestDaemonWatch(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	absent := filepath.Join(t.TempDir(), "absent.sock")
	if w := DaemonWatch("qemu:///system", absent, policy.HotplugDetach, log); w != nil {
		t.Fatal("a watcher for an absent socket")
	}
	if !strings.Contains(logs.String(), "libvirtd socket absent: not watching libvirt") || !strings.Contains(logs.String(), absent) {
		t.Fatalf("log: %q", logs.String())
	}
	present := filepath.Join(t.TempDir(), "libvirt-sock")
	if err := os.WriteFile(present, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w := DaemonWatch("qemu:///system", present, policy.HotplugDetach, nil)
	if w == nil {
		t.Fatal("no watcher for a present socket")
	}
	if dw, ok := w(nil).(*DaemonWatcher); !ok || dw.w.Socket != present || dw.w.URI != "qemu:///system" {
		t.Fatalf("watcher %#v", w(nil))
	}
}
