//go:build linux

package main

import (
	"strings"
	"testing"
)

// The trace drop-in records only the named domains, each with its own BDF,
// and lets every other domain through untouched.
func TestLvTraceHook(t *testing.T) {
	s := lvTraceHook(map[string]string{"b-dom": "0000:00:07.0", "a-dom": "0000:00:06.0"})
	for _, want := range []string{"a-dom) bdf=0000:00:06.0 ;;\nb-dom) bdf=0000:00:07.0 ;;\n*) exit 0 ;;\n", "readlink /sys/bus/pci/devices/$bdf/driver", ">>" + lvTrace} {
		if !strings.Contains(s, want) {
			t.Errorf("trace hook lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, "#!/bin/sh\n") {
		t.Errorf("not a shell script:\n%s", s)
	}
}
