package libvirt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMainArgs: Main denies (1) an argument list ParseArgs refuses, saying
// why; otherwise it runs the hook against the daemon on the socket the
// arguments name: no daemon there is a deny at prepare, and an operation
// the hook ignores is 0.
func TestMainArgs(t *testing.T) {
	var errw bytes.Buffer
	if code := Main(t.Context(), []string{"--budget=soon", "--", "vm", "prepare", "begin", "-"}, "/nowhere", time.Minute, nil, &errw); code != 1 ||
		!strings.Contains(errw.String(), `vfio-gate: hook flag --budget "soon" is not a positive duration: denying`) {
		t.Fatalf("bad args: exit %d %q", code, errw.String())
	}
	xml, err := os.ReadFile(filepath.Join("testdata", "managed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "daemon.sock")
	errw.Reset()
	if code := Main(t.Context(), []string{"--daemon-socket", sock, "--budget=300ms", "--", "vm1", "prepare", "begin", "-"}, "/nowhere", time.Minute, bytes.NewReader(xml), &errw); code != 1 ||
		!strings.Contains(errw.String(), "budget of 300ms (timeout): vfio-gate daemon is not running") {
		t.Fatalf("no daemon: exit %d %q", code, errw.String())
	}
	if code := Main(t.Context(), []string{"--", "vm1", "migrate", "begin", "-"}, sock, time.Minute, bytes.NewReader(xml), &errw); code != 0 {
		t.Fatalf("other op: exit %d", code)
	}
}

// TestInstallDefaultsAndReload: an empty Binary is this executable; with
// Reload, what the reload did (or why it failed) ends the notes.
func TestInstallDefaultsAndReload(t *testing.T) {
	dir := t.TempDir()
	res, err := InstallHook(InstallOptions{LibvirtDir: dir, LibvirtVersion: "9.0.0", Reload: true,
		reloader: func() ([]string, error) {
			return []string{"sent SIGHUP to virtqemud (pid 42)"}, errors.New("libvirtd: not running")
		}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(res.DropIn)
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	if err != nil || exe == "" || !strings.Contains(string(b), "exec '"+exe+"' libvirt-hook") {
		t.Fatalf("drop-in %q (%v); want it to exec %s", b, err, exe)
	}
	n := res.Notes
	if len(n) < 2 || n[len(n)-2] != "sent SIGHUP to virtqemud (pid 42)" || n[len(n)-1] != "reload failed: libvirtd: not running" {
		t.Fatalf("notes %q", n)
	}
	res, err = InstallHook(InstallOptions{LibvirtDir: dir, Binary: "/usr/bin/vfio-gate", LibvirtVersion: "9.0.0",
		reloader: func() ([]string, error) { t.Fatal("reloaded without Reload"); return nil, nil }})
	if err != nil || strings.Contains(strings.Join(res.Notes, "\n"), "pid 42") {
		t.Fatalf("without Reload: %v %q", err, res)
	}
}
