package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/internal/config"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
)

// TestShippedPolicyDeniesByDefault: the example policy the package installs
// is valid and lets nothing unattested through: the demo's genuine device
// (attests fine, but no rule names its anchors) is denied for a confidential
// VM, and its device without CMA for an ordinary one.
func TestShippedPolicyDeniesByDefault(t *testing.T) {
	w, e, flags := demoEnv(t)
	good, plain := w.Devices[0].BDF, w.Devices[2].BDF
	flags = append(flags, "--policy", "../../contrib/etc/vfio-gate/policy.yaml")
	code, out, errs := runEnv(t, e, append([]string{"check", "--confidential", "--json", good}, flags...)...)
	if code != exitDenied || !strings.Contains(out, `"no-rule"`) {
		t.Fatalf("confidential check of an unknown device: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runEnv(t, e, append([]string{"check", "--json", plain}, flags...)...)
	if code != exitDenied || !strings.Contains(out, `"no-cma"`) {
		t.Fatalf("ordinary check of a device without CMA: exit %d\n%s\n%s", code, out, errs)
	}
}

var commentedSetting = regexp.MustCompile(`^ *# [a-z-]+: `)

// TestShippedConfigApplies: every key of the example configuration names a
// flag of the command it is filed under.
func TestShippedConfigApplies(t *testing.T) {
	b, err := os.ReadFile("../../contrib/etc/vfio-gate/vfio-gate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// uncomment the commented settings: they must be valid too
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if commentedSetting.MatchString(l) {
			l = strings.Replace(l, "# ", "", 1)
		}
		lines = append(lines, l)
	}
	for _, text := range []string{string(b), strings.Join(lines, "\n")} {
		f, err := config.Parse("vfio-gate.yaml", []byte(text))
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		c := &configFile{f}
		root := newRootCmd(&env{getenv: func(string) string { return "" }})
		for _, name := range []string{"daemon", "libvirt-hook", "status"} {
			cmd, _, err := root.Find([]string{name})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.apply(root, cmd); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, text)
			}
		}
	}
}

// TestShippedUnitsVerify runs systemd-analyze verify on the shipped units
// (with a stand-in binary at the ExecStart path).
func TestShippedUnitsVerify(t *testing.T) {
	testutil.Require(t, testutil.Cap{Name: "systemd", Hint: "install it: bash scripts/install-deps (apt-get install systemd)",
		Probe: func() error { _, err := exec.LookPath("systemd-analyze"); return err }})
	// The ExecStart binary must exist: point it at a stand-in. The man page
	// named in Documentation= is checked in the package test (it is
	// generated at build time), hence --man=no here.
	out, err := exec.Command("sh", "-c", `set -e
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
printf '#!/bin/sh\n' > "$dir/vfio-gate"; chmod 0755 "$dir/vfio-gate"
for u in vfio-gate.service vfio-gate.socket; do
  sed "s#/usr/bin/vfio-gate#$dir/vfio-gate#" ../../contrib/systemd/$u > "$dir/$u"
done
systemd-analyze verify --man=no "$dir/vfio-gate.service" "$dir/vfio-gate.socket" 2>&1`).CombinedOutput()
	if err != nil || strings.Contains(string(out), "vfio-gate.s") {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
