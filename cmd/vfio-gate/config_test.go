package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The parser's tests, its fuzz target and the file checks (owner, mode,
// FIFO) are in internal/config.

// TestConfigPrecedence: flag > configuration file > default, for a global
// flag (daemon-socket, seen in status's error) and a command's own flag
// (install-hook's libvirt-dir); other commands' sections are not applied.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vfio-gate.yaml")
	fromCfg, fromFlag := filepath.Join(dir, "cfg.sock"), filepath.Join(dir, "flag.sock")
	lvCfg, lvFlag := filepath.Join(dir, "lv-cfg"), filepath.Join(dir, "lv-flag")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\nversion: 1\ndaemon-socket: " + fromCfg + "\ninstall-hook:\n  libvirt-dir: " + lvCfg +
		"\nuninstall-hook:\n  libvirt-dir: /nonexistent\n")

	// default (no configuration file)
	_, _, errs := runCLI(t, "status", "--config", filepath.Join(dir, "absent.yaml"))
	if !strings.Contains(errs, "config: open") {
		t.Fatalf("an explicit --config that does not exist must fail: %q", errs)
	}
	// config
	code, _, errs := runCLI(t, "status", "--config", cfg)
	if code != exitUnavailable || !strings.Contains(errs, fromCfg) {
		t.Fatalf("config's daemon-socket not used: exit %d %q", code, errs)
	}
	// flag beats config
	_, _, errs = runCLI(t, "status", "--config", cfg, "--daemon-socket", fromFlag)
	if !strings.Contains(errs, fromFlag) || strings.Contains(errs, fromCfg) {
		t.Fatalf("flag did not win: %q", errs)
	}
	// a command's section
	code, out, errs := runCLI(t, "install-hook", "--config", cfg, "--binary", "/usr/bin/vfio-gate")
	if code != 0 || !strings.Contains(out, filepath.Join(lvCfg, "hooks/qemu.d/vfio-gate")) {
		t.Fatalf("install-hook with config: exit %d %q %q", code, out, errs)
	}
	code, out, errs = runCLI(t, "install-hook", "--config", cfg, "--binary", "/usr/bin/vfio-gate", "--libvirt-dir", lvFlag)
	if code != 0 || !strings.Contains(out, filepath.Join(lvFlag, "hooks/qemu.d/vfio-gate")) {
		t.Fatalf("install-hook flag over config: exit %d %q %q", code, out, errs)
	}
	// defaults untouched when the file does not set them
	write("version: 1\n")
	_, _, errs = runCLI(t, "status", "--config", cfg)
	if !strings.Contains(errs, "/run/vfio-gate/daemon.sock") {
		t.Fatalf("default daemon-socket: %q", errs)
	}

	for _, c := range []struct{ body, want string }{
		{"version: 1\ntmp: x\n", `:2: "tmp" is not a global flag`},
		{"version: 1\ndaemon:\n  budget: 1s\n", `:3: "budget" is not a flag of daemon`},
		{"version: 1\nfrobnicate:\n  x: 1\n", `"frobnicate" is not a vfio-gate command`},
		{"version: 2\n", "this vfio-gate reads version 1"},
		{"tpm: /dev/tpmrm0\n", `no "version: 1"`},
		{"version: 1\nlog-level: loud\n", "--log-level"},
		{"version: 1\ndaemon:\n  poll-interval: soon\n", "poll-interval"},
		{"- a\n", "want a mapping"},
	} {
		write(c.body)
		code, _, errs := runCLI(t, "daemon", "--config", cfg, "--daemon-socket", filepath.Join(dir, "never.sock"))
		if code != exitInternal || !strings.Contains(errs, c.want) {
			t.Errorf("config %q: exit %d %q, want %q", c.body, code, errs, c.want)
		}
	}
}
