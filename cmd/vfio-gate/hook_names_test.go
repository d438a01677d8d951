package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
)

// recordingDaemon answers the daemon API on a unix socket: every check is
// allowed and recorded, so a test sees which domain and phase the hook asked
// about (a hook that misreads its arguments asks about the wrong one, or not
// at all).
type recordingDaemon struct {
	sock   string
	mu     sync.Mutex
	checks []daemon.CheckRequest
}

func startRecordingDaemon(t *testing.T) *recordingDaemon {
	t.Helper()
	d := &recordingDaemon{sock: filepath.Join(t.TempDir(), "d.sock")}
	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(daemon.PathCheck, func(w http.ResponseWriter, r *http.Request) {
		var req daemon.CheckRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.checks = append(d.checks, req)
		d.mu.Unlock()
		resp := daemon.CheckResponse{Decision: "allow"}
		for _, b := range req.BDFs {
			resp.Devices = append(resp.Devices, daemon.DeviceDecision{BDF: b, Decision: "allow"})
		}
		json.NewEncoder(w).Encode(resp)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return d
}

func (d *recordingDaemon) taken() []daemon.CheckRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.checks
	d.checks = nil
	return out
}

// flagNames are domain names libvirt 9.0 accepts (virsh define succeeded for
// several of them) that a flag parser would take apart.
var flagNames = []string{"--", "-h", "--help", "--json", "--budget=1h", "--budget", "--policy", "--tpm",
	"--state-dir", "--daemon-socket", "--daemon-socket=/tmp/evil.sock", "-", "help", "--version", "-v"}

// Issue 14.1: with the installed drop-in's command line, a flag-like domain
// name is libvirt's first argument, never a flag: the hook asks the daemon
// about exactly that domain at prepare and at start, and a deny would stop it.
func TestHookFlagLikeDomainNames(t *testing.T) {
	d := startRecordingDaemon(t)
	for _, name := range flagNames {
		for _, phase := range []string{"prepare", "start"} {
			code, _, errs := runCLIWithStdin(t, domainXML, "libvirt-hook", "--daemon-socket", d.sock, "--", name, phase, "begin", "-")
			got := d.taken()
			if code != 0 || len(got) != 1 || got[0].Domain != name || got[0].Phase != phase {
				t.Errorf("domain %q %s: exit %d, daemon asked %+v, stderr %q", name, phase, code, got, errs)
			}
		}
	}
}

// A drop-in installed before the fix passes no "--". Whatever the name, the
// hook either asks about the right domain and phase or denies (exit 1); it
// never exits 0 without a decision, and never talks to a socket a name chose.
func TestHookFlagLikeNamesLegacyDropIn(t *testing.T) {
	d := startRecordingDaemon(t)
	for _, name := range flagNames {
		for _, phase := range []string{"prepare", "start"} {
			code, _, errs := runCLIWithStdin(t, domainXML, "libvirt-hook", "--daemon-socket", d.sock, name, phase, "begin", "-")
			got := d.taken()
			asked := len(got) == 1 && got[0].Domain == name && got[0].Phase == phase
			if !(code == 0 && asked) && !(code == 1 && len(got) == 0) {
				t.Errorf("legacy drop-in, domain %q %s: exit %d, daemon asked %+v, stderr %q", name, phase, code, got, errs)
			}
			if code == 1 && !strings.Contains(errs, "denying") {
				t.Errorf("legacy drop-in, domain %q %s: deny without saying so: %q", name, phase, errs)
			}
		}
	}
}

// The argument rules themselves are tested in hooks/libvirt (TestParseArgs).

// The drop-in install-hook writes ends the hook's flags with "--".
func TestDropInEndsFlags(t *testing.T) {
	dir := t.TempDir()
	res, err := lvhook.InstallHook(lvhook.InstallOptions{LibvirtDir: dir, Binary: "/usr/bin/vfio-gate", DaemonSocket: "/run/vfio-gate/daemon.sock", LibvirtVersion: "9.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(res.DropIn)
	if err != nil {
		t.Fatal(err)
	}
	if b := string(raw); !strings.Contains(b, `libvirt-hook --daemon-socket '/run/vfio-gate/daemon.sock' -- "$@"`) {
		t.Fatalf("drop-in does not end the hook's flags with --:\n%s", b)
	}
}
