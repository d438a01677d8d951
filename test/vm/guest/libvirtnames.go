//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// lvFlagNames are domain names libvirt accepts that a flag parser takes apart
// (issue 14.1): with a drop-in that let them reach one, "--help" printed help
// and exited 0 and "--budget=1h" shifted the operation ("ignoring", exit 0),
// so the domain started without a decision.
var lvFlagNames = []string{"--help", "--budget=1h"}

// libvirtFlagNames (issue 14.1): a real libvirtd runs the installed drop-in
// for domains named like flags, each with the e1000e as a managed='yes'
// hostdev under the deny-unattested policy: virsh start must fail with the
// hook's deny of that function, and the function must come back to e1000e.
// Needs the libvirt stack up and the e1000e on e1000e (libvirt-release-end).
func libvirtFlagNames(ctx context.Context, h *Harness) Result {
	s, err := h.lvUp(ctx)
	if err != nil {
		return failf("libvirt stack not up: %v", err)
	}
	fn := s.doms[lvDomain].fn
	b, err := parseBDF(fn.BDF)
	if err != nil {
		return failf("%v", err)
	}
	var got []string
	for i, name := range lvFlagNames {
		if _, err := h.waitDriver(ctx, fn.BDF, "e1000e", 30*time.Second); err != nil {
			return failf("before %q: %v", name, err)
		}
		xml := filepath.Join("/tmp", fmt.Sprintf("flagname%d.xml", i))
		if err := os.WriteFile(xml, []byte(fmt.Sprintf(lvDomainXML, name, b[0], b[1], b[2], b[3])), 0o644); err != nil {
			return failf("%v", err)
		}
		if out, err := virsh(ctx, "define", xml); err != nil {
			return failf("virsh define %q: %v: %s", name, err, out)
		}
		t := time.Now()
		out, err := virsh(ctx, "start", "--domain="+name)
		dur := time.Since(t)
		fmt.Fprintf(h.Log, "vmguest: virsh start %q (%v): %v\n%s\n", name, dur.Round(time.Millisecond), err, out)
		if un, uerr := virsh(ctx, "undefine", "--domain="+name); uerr != nil {
			fmt.Fprintf(h.Log, "vmguest: virsh undefine %q: %v: %s\n", name, uerr, un)
		}
		if err == nil {
			virsh(ctx, "destroy", "--domain="+name)
			return failf("virsh start of the domain named %q succeeded: the hook let it through without a decision", name)
		}
		want := "vfio-gate: DENY " + fn.BDF + " no-cma"
		if !strings.Contains(out, "Hook script execution failed") || !strings.Contains(out, want) {
			return failf("virsh start %q failed (%v) without %q from the hook: %s%s", name, err, want, out, lvDiag())
		}
		got = append(got, fmt.Sprintf("%q refused in %.1f s", name, dur.Seconds()))
	}
	if _, err := h.waitDriver(ctx, fn.BDF, "e1000e", 30*time.Second); err != nil {
		return failf("after the flag-named domains: %v", err)
	}
	return passf("domains named like flags, %s: %s by the hook's deny of %s; function back on e1000e", strings.Join(lvFlagNames, ", "), strings.Join(got, ", "), fn.BDF)
}
