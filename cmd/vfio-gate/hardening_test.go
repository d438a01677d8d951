package main

import (
	"os"
	"strings"
	"testing"
)

// TestNoLockFileForAMissingFunction: attest and doe of a BDF that does not
// exist fail (unavailable) and leave nothing in the lock directory.
func TestNoLockFileForAMissingFunction(t *testing.T) {
	fx := newDevFixture(t)
	for _, args := range [][]string{
		{"attest", "0000:0f:00.0"},
		{"doe", "discover", "0000:0f:00.0"},
		{"doe", "cdat", "0000:0f:00.0"},
	} {
		code, _, errs := fx.run(t, append(args, "--lock-dir", fx.lockDir)...)
		if code != exitUnavailable {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUnavailable, errs)
		}
		ents, err := os.ReadDir(fx.lockDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			t.Errorf("%v left %s in the lock directory", args, e.Name())
		}
	}
}

// TestGroupCommandHelpWithTypo: "doe discovery --help" (a typo for
// discover) is a usage error, not doe's help with exit 0.
func TestGroupCommandHelpWithTypo(t *testing.T) {
	for _, args := range [][]string{{"doe", "discovery", "--help"}, {"doe", "--help", "discovery"}, {"tdisp", "unlock", "-h"}, {"doe", "discovery"}} {
		code, out, errs := runCLI(t, args...)
		if code != exitInternal || !strings.Contains(errs, "unknown command \""+args[1]+"\"") && !strings.Contains(errs, "unknown command \""+args[2]+"\"") {
			t.Errorf("%v: exit %d, stderr %q, want a usage error naming the unknown command", args, code, errs)
		}
		if strings.Contains(out, "Usage:") {
			t.Errorf("%v printed help: %s", args, out)
		}
	}
	for _, args := range [][]string{{"doe", "--help"}, {"doe", "-h"}, {"doe"}, {"doe", "discover", "--help"}} {
		code, out, errs := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, want help (out %q, err %q)", args, code, out, errs)
		}
	}
}
