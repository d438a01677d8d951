package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The version string itself is tested in internal/buildinfo.

// TestGenDocs: a man page per command (from its own help) and the three
// shell completions; the page date comes from SOURCE_DATE_EPOCH.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	var out, errw bytes.Buffer
	code := run(context.Background(), []string{"vfio-gate", "gen-docs", "--man", filepath.Join(dir, "man"), "--completions", filepath.Join(dir, "c"),
		"--config", filepath.Join(dir, "absent-default.yaml")}, strings.NewReader(""), &out, &errw,
		func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1700000000"
			}
			return ""
		})
	if code != 1 || !strings.Contains(errw.String(), "config") {
		t.Fatalf("an explicit --config that is absent must fail: %d %s", code, errw.String())
	}
	must(t, os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte("version: 1\n"), 0o644))
	code = run(context.Background(), []string{"vfio-gate", "gen-docs", "--man", filepath.Join(dir, "man"), "--completions", filepath.Join(dir, "c"),
		"--config", filepath.Join(dir, "cfg.yaml")}, strings.NewReader(""), &out, &errw,
		func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1700000000"
			}
			return ""
		})
	if code != 0 {
		t.Fatalf("gen-docs: exit %d %s", code, errw.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "man", "vfio-gate-daemon.1"))
	if err != nil || !bytes.Contains(b, []byte("--tpm-wait")) || !bytes.Contains(b, []byte("Nov 2023")) {
		t.Fatalf("daemon man page: %v\n%.400s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "man", "vfio-gate-gen-docs.1")); err == nil {
		t.Error("the hidden gen-docs command got a man page")
	}
	for _, f := range []string{"vfio-gate.bash", "_vfio-gate", "vfio-gate.fish"} {
		if fi, err := os.Stat(filepath.Join(dir, "c", f)); err != nil || fi.Size() == 0 {
			t.Errorf("completion %s: %v", f, err)
		}
	}
}
