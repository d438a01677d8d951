package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the lines of the first ```sh block after marker in the
// README, comments stripped.
func readmeBlock(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("no sh block after %q", marker)
	}
	s = s[start+len("```sh\n"):]
	s = s[:strings.Index(s, "```")]
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if c := strings.Index(l, "#"); c >= 0 {
			l = l[:c]
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestREADMESoftwareDeviceSession runs the README's session with the software
// device as written (with a free port and a temporary CA file): emulate in
// the background, then each command, which must succeed.
func TestREADMESoftwareDeviceSession(t *testing.T) {
	lines := readmeBlock(t, "A session with the software device")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "vfio-gate emulate ") || !strings.HasSuffix(lines[0], "&") {
		t.Fatalf("README session block changed shape: %q", lines)
	}
	const addr, ca = "127.0.0.1:2323", "/tmp/emu-ca.pem"
	tmpCA := filepath.Join(t.TempDir(), "emu-ca.pem")
	subst := func(l, listen string) []string {
		l = strings.ReplaceAll(strings.ReplaceAll(l, addr, listen), ca, tmpCA)
		return strings.Fields(strings.TrimSuffix(l, "&"))
	}
	em := subst(lines[0], "127.0.0.1:0")
	out, stop, done := startEmulate(t, em[2:]...)
	defer func() { stop(); <-done }()
	for _, l := range lines[1:] {
		args := subst(l, out.Listen)
		if args[0] != "vfio-gate" {
			t.Fatalf("README line %q does not run vfio-gate", l)
		}
		code, stdout, stderr := runCLI(t, args[1:]...)
		if code != 0 || strings.TrimSpace(stdout) == "" {
			t.Errorf("README: %s\nexit %d\nstdout %q\nstderr %q", l, code, stdout, stderr)
		}
	}
}
