package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// runCLI runs the CLI in-process and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := run(context.Background(), append([]string{"vfio-gate"}, args...), strings.NewReader(""), &out, &errw,
		func(string) string { return "" })
	return code, out.String(), errw.String()
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"Exit codes:", "3  policy denied", "6  vfio-pci bind error", "--sysfs-root", "--json"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestGlobalFlagsBeforeAndAfter(t *testing.T) {
	for _, args := range [][]string{{"--json", "version"}, {"version", "--json"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, `"version"`) {
			t.Errorf("%v: exit %d, out %q, err %q", args, code, out, errs)
		}
	}
}

func TestUnknownFlagIsUsageError(t *testing.T) {
	code, _, errs := runCLI(t, "version", "--no-such-flag")
	if code != exitInternal || !strings.Contains(errs, "unknown flag") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, "--log-level", "loud", "version")
	if code != exitInternal || !strings.Contains(errs, "--log-level") {
		t.Fatalf("bad log level: exit %d, stderr %q", code, errs)
	}
}

func TestExitCodeMapping(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("something unexpected"), exitInternal},
		{withCode(exitDenied, errors.New("denied")), exitDenied},
		{withCode(exitBind, errors.New("x")), exitBind},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
