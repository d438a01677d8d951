//go:build linux

package main

// The libvirt-* scenarios themselves; the stack they share is in libvirt.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// libvirtUp (issue 7): libvirtd, virsh and QEMU from the host's Debian
// packages run in the guest; the vfio-gate hook is installed before libvirtd
// starts; the vfio-gate daemon answers on its socket; the domain is defined.
func libvirtUp(ctx context.Context, h *Harness) Result {
	s, err := h.lvUp(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	out, err := virsh(ctx, "version")
	if err != nil {
		return failf("virsh version: %v: %s", err, out)
	}
	return passf("%s; domains %s (%s) and %s (%s) defined, each with its function as a managed='yes' hostdev; %s", strings.Join(strings.Fields(out), " "),
		lvDomain, s.doms[lvDomain].fn.BDF, lvDomainCXL, s.doms[lvDomainCXL].fn.BDF, s.timings)
}

// lvStartDenied (issue 7): `virsh start` fails and libvirt shows the
// hook's deny line for the domain's hostdev: no CMA, denied by
// deny-unattested.
func lvStartDenied(name string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		d, err := h.lvStarted(ctx, name)
		if err != nil {
			return failf("%v%s", err, lvDiag())
		}
		if d.startErr == nil {
			return failf("virsh start %s succeeded; the hook should have denied it: %s", name, d.startOut)
		}
		want := "vfio-gate: DENY " + d.fn.BDF + " no-cma"
		if !strings.Contains(d.startOut, "Hook script execution failed") || !strings.Contains(d.startOut, want) {
			return failf("virsh start %s failed (%v), but without %q from the hook: %s%s", name, d.startErr, want, d.startOut, lvDiag())
		}
		line := d.startOut[strings.Index(d.startOut, want):]
		return passf("virsh start %s failed after %.1f s: ...%s", name, d.startDur.Seconds(), firstLine(line))
	}
}

// lvPrepareDeferred (issue 7): at prepare begin the hostdev was still on its
// host driver (trace hook) and the daemon answered "deferred" naming that
// driver (status decisions): its first decision on the function.
func lvPrepareDeferred(name string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		d, err := h.lvStarted(ctx, name)
		if err != nil {
			return failf("%v%s", err, lvDiag())
		}
		trace := lvTraceLines(name)
		want := "prepare begin " + d.hostDrv
		if !slices.Contains(trace, want) {
			return failf("the trace hook saw no %q for %s: %q", want, name, trace)
		}
		st, err := h.lvStatus(ctx)
		if err != nil {
			return failf("%v", err)
		}
		for _, dd := range st.Decisions {
			if dd.BDF != d.fn.BDF {
				continue
			}
			if dd.Decision != "deferred" || len(dd.Reasons) != 1 || dd.Reasons[0].Code != "deferred" || !strings.Contains(dd.Reasons[0].Message, d.hostDrv) {
				return failf("first daemon decision on %s is %+v, want deferred naming %s; status: %s", d.fn.BDF, dd, d.hostDrv, clip(st.Raw, 300))
			}
			return passf("%s: trace %q; daemon at prepare: %s %s: %s", d.fn.BDF, want, dd.Decision, dd.Reasons[0].Code, dd.Reasons[0].Message)
		}
		return failf("the daemon made no decision on %s: %s%s", d.fn.BDF, clip(st.Raw, 300), lvDiag())
	}
}

// lvStartDecided (issue 7): at start begin libvirt had moved the function to
// vfio-pci (trace hook), and that is when the daemon decided: deny no-cma
// (not mailbox-owned, which it would be on a host driver), the only verdict
// on the function in the daemon's TPM event log, which `log verify` replays
// against the TPM.
func lvStartDecided(name string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		d, err := h.lvStarted(ctx, name)
		if err != nil {
			return failf("%v%s", err, lvDiag())
		}
		trace := lvTraceLines(name)
		if !slices.Contains(trace, "start begin vfio-pci") {
			return failf("the trace hook saw no \"start begin vfio-pci\" for %s: %q", name, trace)
		}
		st, err := h.lvStatus(ctx)
		if err != nil {
			return failf("%v", err)
		}
		var seq []string
		for _, dd := range st.Decisions {
			if dd.BDF == d.fn.BDF {
				codes := []string{}
				for _, r := range dd.Reasons {
					codes = append(codes, r.Code)
				}
				seq = append(seq, dd.Decision+"("+strings.Join(codes, ",")+")")
			}
		}
		if !slices.Equal(seq, []string{"deferred(deferred)", "deny(no-cma)"}) {
			return failf("daemon decisions on %s: %v, want [deferred(deferred) deny(no-cma)]", d.fn.BDF, seq)
		}
		// The TPM event log: one verdict on the function, the deny.
		out, errOut, code := h.run(ctx, "log", "show", "--json", "--state-dir", lvState)
		if code != 0 {
			return failf("log show --json: exit %d: %s", code, errOut)
		}
		var doc any
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			return failf("log show --json: %v", err)
		}
		var verdicts []string
		walkJSON(doc, func(m map[string]any) {
			if m["bdf"] == d.fn.BDF {
				if v, ok := m["verdict"].(string); ok {
					verdicts = append(verdicts, fmt.Sprintf("%s%v", v, m["reasons"]))
				}
			}
		})
		if len(verdicts) != 1 || !strings.HasPrefix(verdicts[0], "deny") || !strings.Contains(verdicts[0], "no-cma") {
			return failf("TPM event log verdicts on %s: %v, want exactly one deny with no-cma: %s", d.fn.BDF, verdicts, clip(out, 300))
		}
		vout, verr, vcode := h.run(ctx, "log", "verify", "--state-dir", lvState, "--tpm", filepath.Join(h.Dev, "tpmrm0"))
		if vcode != 0 {
			return failf("log verify of the daemon's event log: exit %d: %s %s", vcode, vout, verr)
		}
		return passf("%s: trace \"start begin vfio-pci\"; daemon decisions %v; TPM event log: one verdict %s, log verify ok", d.fn.BDF, seq, verdicts[0])
	}
}

// walkJSON calls f on every object in v.
func walkJSON(v any, f func(map[string]any)) {
	switch t := v.(type) {
	case map[string]any:
		f(t)
		for _, c := range t {
			walkJSON(c, f)
		}
	case []any:
		for _, c := range t {
			walkJSON(c, f)
		}
	}
}

// lvHostDriverBack (issue 7): after the aborted start libvirt gave the
// function back to its host driver, and the domain is not running.
func lvHostDriverBack(name string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		d, err := h.lvStarted(ctx, name)
		if err != nil {
			return failf("%v%s", err, lvDiag())
		}
		drv, err := h.waitDriver(ctx, d.fn.BDF, d.hostDrv, 15*time.Second)
		if err != nil {
			return failf("after the aborted start of %s: %v", name, err)
		}
		out, err := virsh(ctx, "domstate", name)
		if err != nil || strings.TrimSpace(out) != "shut off" {
			return failf("virsh domstate %s: %v: %q, want \"shut off\"", name, err, out)
		}
		return passf("%s back on %s, domain %s %s", d.fn.BDF, drv, name, strings.TrimSpace(out))
	}
}

// lvReleaseEnd (issue 7): libvirt called release end after the aborted
// start (trace hook), it reached the daemon (status: released lists the
// domain) and the daemon holds nothing for the domain.
func lvReleaseEnd(name string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		if _, err := h.lvStarted(ctx, name); err != nil {
			return failf("%v%s", err, lvDiag())
		}
		find := func(st *lvStatusJSON) int {
			return slices.IndexFunc(st.Released, func(r lvRelease) bool { return r.Domain == name })
		}
		var st *lvStatusJSON
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; {
			st, err = h.lvStatus(ctx)
			if err != nil {
				return failf("%v", err)
			}
			if find(st) >= 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		trace := lvTraceLines(name)
		if !slices.ContainsFunc(trace, func(l string) bool { return strings.HasPrefix(l, "release end ") }) {
			return failf("the trace hook saw no \"release end\" for %s: %q", name, trace)
		}
		i := find(st)
		if i < 0 {
			return failf("status released %+v does not list %s%s", st.Released, name, lvDiag())
		}
		r := st.Released[i]
		if len(r.Errors) > 0 {
			return failf("release of %s had errors: %v", name, r.Errors)
		}
		if _, held := st.Domains[name]; held {
			return failf("the daemon still holds %s after its release: %v", name, st.Domains)
		}
		return passf("trace %q; daemon released %s: bdfs %v deferred %v recorded %v", trace, r.Domain, r.BDFs, r.Deferred, r.Recorded)
	}
}

// lvAllowedStart starts the e1000e domain, once, with the daemon restarted
// under lvPolicyAllow.
func (h *Harness) lvAllowedStart(ctx context.Context) (*libvirtStack, *lvDom, error) {
	s, err := h.lvUp(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("libvirt stack not up: %w", err)
	}
	d := s.doms[lvDomain]
	if s.allowTried {
		return s, d, s.allowErr
	}
	s.allowTried = true
	s.allowErr = func() error {
		if _, err := h.waitDriver(ctx, d.fn.BDF, d.hostDrv, 15*time.Second); err != nil {
			return err
		}
		if err := os.WriteFile(lvPolicyAllow, []byte(lvPolicyAllowText), 0o600); err != nil {
			return err
		}
		if err := s.stopDaemon(); err != nil {
			return err
		}
		if err := s.startDaemon(ctx, h, lvPolicyAllow); err != nil {
			return fmt.Errorf("restart the daemon with %s: %w", lvPolicyAllow, err)
		}
		s.allowMark = len(lvTraceLines(lvDomain))
		t := time.Now()
		out, err := virsh(ctx, "start", lvDomain)
		fmt.Fprintf(h.Log, "vmguest: virsh start %s under the allow policy (%v): %v\n%s\n", lvDomain, time.Since(t).Round(time.Millisecond), err, out)
		if err != nil {
			return fmt.Errorf("virsh start %s with an allow policy: %v: %s", lvDomain, err, clip(out, 300))
		}
		return nil
	}()
	return s, d, s.allowErr
}

// libvirtAllowedStart (issue 7): with the daemon restarted under a policy
// that allows unattested functions in non-confidential domains, `virsh
// start` runs the domain: libvirt ran prepare, start and started begin
// (trace), QEMU holds the e1000e's /dev/vfio group open, the function is on
// vfio-pci, and the daemon holds it for the domain after an allow.
func libvirtAllowedStart(ctx context.Context, h *Harness) Result {
	s, d, err := h.lvAllowedStart(ctx)
	if err != nil {
		return failf("%v%s", err, lvDiag())
	}
	trace := lvTraceLines(lvDomain)[s.allowMark:]
	want := []string{"prepare begin e1000e", "start begin vfio-pci", "started begin vfio-pci"}
	if !slices.Equal(trace[:min(3, len(trace))], want) {
		return failf("trace of the allowed start: %q, want %q first", trace, want)
	}
	if out, err := virsh(ctx, "domstate", lvDomain); err != nil || strings.TrimSpace(out) != "running" {
		return failf("virsh domstate %s: %v: %q, want running", lvDomain, err, out)
	}
	if _, err := h.waitDriver(ctx, d.fn.BDF, "vfio-pci", 5*time.Second); err != nil {
		return failf("while the domain runs: %v", err)
	}
	group := filepath.Join("/dev/vfio", d.fn.IOMMUGroup)
	pid, err := readTrim("/run/libvirt/qemu/" + lvDomain + ".pid")
	if err != nil {
		return failf("QEMU pid file: %v", err)
	}
	fds, _ := filepath.Glob("/proc/" + pid + "/fd/*")
	open := slices.ContainsFunc(fds, func(fd string) bool { l, _ := os.Readlink(fd); return l == group })
	if !open {
		return failf("QEMU (pid %s) does not hold %s open", pid, group)
	}
	st, err := h.lvStatus(ctx)
	if err != nil {
		return failf("%v", err)
	}
	if !slices.Contains(st.Domains[lvDomain], d.fn.BDF) {
		return failf("the daemon does not hold %s for %s: domains %v", d.fn.BDF, lvDomain, st.Domains)
	}
	last := ""
	for _, dd := range st.Decisions {
		if dd.BDF == d.fn.BDF {
			last = dd.Decision
		}
	}
	if last != "allow" {
		return failf("last daemon decision on %s is %q, want allow", d.fn.BDF, last)
	}
	return passf("%s running: trace %q; QEMU pid %s holds %s; daemon holds %s after allow", lvDomain, trace, pid, group, d.fn.BDF)
}

// libvirtAllowedDestroy (issue 7): `virsh destroy` of the running domain:
// libvirt ran stopped end and release end (trace), gave the e1000e back to
// e1000e, and the daemon released it, with a release event in its TPM
// event log that `log verify` replays.
func libvirtAllowedDestroy(ctx context.Context, h *Harness) Result {
	s, d, err := h.lvAllowedStart(ctx)
	if err != nil {
		return failf("the domain did not run: %v", err)
	}
	if out, err := virsh(ctx, "destroy", lvDomain); err != nil {
		return failf("virsh destroy %s: %v: %s", lvDomain, err, out)
	}
	if _, err := h.waitDriver(ctx, d.fn.BDF, d.hostDrv, 15*time.Second); err != nil {
		return failf("after virsh destroy: %v", err)
	}
	var st *lvStatusJSON
	var rel *lvRelease
	for deadline := time.Now().Add(15 * time.Second); rel == nil; {
		if st, err = h.lvStatus(ctx); err != nil {
			return failf("%v", err)
		}
		for i := range st.Released {
			if r := &st.Released[i]; r.Domain == lvDomain && slices.Contains(r.BDFs, d.fn.BDF) {
				rel = r
			}
		}
		if rel == nil && time.Now().After(deadline) {
			return failf("status released %+v has no release of %s for %s", st.Released, d.fn.BDF, lvDomain)
		}
		time.Sleep(100 * time.Millisecond)
	}
	trace := lvTraceLines(lvDomain)[s.allowMark:]
	for _, w := range []string{"stopped end vfio-pci", "release end"} {
		if !slices.ContainsFunc(trace, func(l string) bool { return strings.HasPrefix(l, w) }) {
			return failf("trace after virsh destroy: %q, no %q", trace, w)
		}
	}
	if len(rel.Errors) > 0 || !rel.Recorded {
		return failf("release of %s: errors %v, recorded %v", lvDomain, rel.Errors, rel.Recorded)
	}
	if _, held := st.Domains[lvDomain]; held {
		return failf("the daemon still holds %s: %v", lvDomain, st.Domains)
	}
	out, errOut, code := h.run(ctx, "log", "show", "--json", "--state-dir", lvState)
	if code != 0 {
		return failf("log show --json: exit %d: %s", code, errOut)
	}
	var doc any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return failf("log show --json: %v", err)
	}
	releases := 0
	walkJSON(doc, func(m map[string]any) {
		if _, verdict := m["verdict"]; m["bdf"] == d.fn.BDF && m["domain"] == lvDomain && !verdict {
			releases++
		}
	})
	if releases != 1 {
		return failf("TPM event log has %d release events of %s for %s, want 1: %s", releases, d.fn.BDF, lvDomain, clip(out, 300))
	}
	vout, verr, vcode := h.run(ctx, "log", "verify", "--state-dir", lvState, "--tpm", filepath.Join(h.Dev, "tpmrm0"))
	if vcode != 0 {
		return failf("log verify: exit %d: %s %s", vcode, vout, verr)
	}
	return passf("trace %q; %s back on %s; daemon released %v for %s (recorded); one release event in the TPM log, log verify ok", trace, d.fn.BDF, d.hostDrv, rel.BDFs, lvDomain)
}
