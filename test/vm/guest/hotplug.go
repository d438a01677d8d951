//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The libvirt-hotplug-* scenarios (issue 7): hot-plug calls no libvirt hook,
// so the daemon's libvirt monitor must notice a PCI hostdev that appears on
// a running domain without a gate decision, report it and, when the policy
// says libvirt: {hotplug: detach}, detach it. A real libvirtd (the stack of
// libvirt.go) runs a tiny q35 domain without hostdevs; `virsh attach-device
// --live` hot-plugs the e1000e (managed='yes') into its free pcie-root-port.
// The daemon is restarted with --poll-interval 1s under a policy with
// libvirt.hotplug detach, later report.
//
// The domain has no OS, so nothing in it would acknowledge an ACPI unplug
// request: with QEMU's default ACPI hot-plug on q35 root ports libvirt's
// detach would only be "sent" and the device would stay. The domain turns it
// off (-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off): native
// PCIe hot-plug of a slot whose power nobody turned on completes the unplug
// at once (QEMU sends DEVICE_DELETED), so libvirt really removes the hostdev
// and gives the function back to e1000e.

const (
	hpDomain    = "vfio-gate-hotplug"
	hpTrace     = "/tmp/libvirt-hotplug-trace"
	hpPoll      = time.Second // the daemon's --poll-interval here
	hpDetectMax = 60 * time.Second
)

// hpTraceHook: a qemu.d drop-in that records every hook call for hpDomain
// with the e1000e's driver at that moment (%s: its BDF).
const hpTraceHook = `#!/bin/sh
cat >/dev/null
[ "$1" = ` + hpDomain + ` ] || exit 0
d=$(readlink /sys/bus/pci/devices/%s/driver)
echo "$2 $3 ${d##*/}" >>` + hpTrace + `
exit 0
`

// hpDomainXML: no OS, no hostdev, q35 with one free pcie-root-port for the
// hot-plug and QEMU's ACPI hot-plug of root ports turned off (see above).
const hpDomainXML = `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>` + hpDomain + `</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/>
  </qemu:commandline>
</domain>
`

// hpHostdevXML: what virsh attach-device --live hot-plugs (%s: domain, bus,
// slot, function of the e1000e).
const hpHostdevXML = `<hostdev mode='subsystem' type='pci' managed='yes'>
  <source><address domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'/></source>
</hostdev>
`

// hpPolicyText: deny-unattested (the e1000e would be denied at prepare), and
// the hot-plug policy under test (%s).
const hpPolicyText = `version: 1
mode: enforce
defaults:
  confidential: deny-unattested
  non_confidential: deny-unattested
rules: []
libvirt:
  hotplug: %s
`

// hpRun is what one hot-plug experiment (one policy mode) observed.
type hpRun struct {
	err       error // the experiment could not run
	mode      string
	bdf       string
	traceMark int      // trace lines before the attach
	startTr   []string // trace lines of the domain's start (first run only)

	attachOut string
	attachDur time.Duration
	attachErr error

	report    *hpReport // the daemon's report naming the function and domain
	reportLat time.Duration
	reports   []hpReport // every report about the function, at the end

	liveGoneLat time.Duration // detach: live XML without the hostdev, after the attach returned
	driverLat   time.Duration // detach: e1000e bound again
	driverErr   error
	liveGone    bool

	afterPolls string // report: what held after several poll intervals
	afterErr   error
	trace      []string // trace lines after the attach, at the end
}

type hpReport struct {
	Kind    string    `json:"kind"`
	Domain  string    `json:"domain"`
	BDF     string    `json:"bdf"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

func hpTraceLines() []string {
	b, _ := os.ReadFile(hpTrace)
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// hpReports returns the daemon's reports about bdf on hpDomain.
func (h *Harness) hpReports(ctx context.Context, bdf string) ([]hpReport, string, error) {
	st, err := h.lvStatus(ctx)
	if err != nil {
		return nil, "", err
	}
	var doc struct {
		Reports []hpReport `json:"reports"`
	}
	if err := json.Unmarshal([]byte(st.Raw), &doc); err != nil {
		return nil, st.Raw, err
	}
	var out []hpReport
	for _, r := range doc.Reports {
		if r.BDF == bdf && r.Domain == hpDomain {
			out = append(out, r)
		}
	}
	return out, st.Raw, nil
}

// hpLiveHasHostdev reports whether libvirt's live XML of hpDomain lists a
// PCI hostdev with the e1000e's source address.
func hpLiveHasHostdev(ctx context.Context, b [4]string) (bool, error) {
	out, err := virsh(ctx, "dumpxml", hpDomain)
	if err != nil {
		return false, fmt.Errorf("virsh dumpxml %s: %v: %s", hpDomain, err, clip(out, 200))
	}
	addr := fmt.Sprintf("domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'", b[0], b[1], b[2], b[3])
	return strings.Contains(out, "<hostdev") && strings.Contains(out, addr), nil
}

// startDaemonArgs is startDaemon (libvirt.go) with extra daemon flags.
func (s *libvirtStack) startDaemonArgs(ctx context.Context, h *Harness, policy string, extra ...string) error {
	dl, err := os.OpenFile(lvDaemonLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"daemon", "--policy", policy, "--tpm", filepath.Join(h.Dev, "tpmrm0"),
		"--state-dir", lvState, "--daemon-socket", lvDaemonSock, "--libvirt-socket", lvSock, "--libvirt-uri", lvURI,
		"--log-level", "debug"}, extra...)
	s.daemon = exec.Command(h.VfioGate, args...)
	s.daemon.Stdout, s.daemon.Stderr = dl, dl
	if err := s.daemon.Start(); err != nil {
		dl.Close()
		return fmt.Errorf("start vfio-gate daemon: %w", err)
	}
	dl.Close()
	s.dmnDone = make(chan error, 1)
	go func(c *exec.Cmd, done chan error) { done <- c.Wait() }(s.daemon, s.dmnDone)
	if err := s.waitSock(ctx, lvDaemonSock, s.dmnDone, "vfio-gate daemon", 30*time.Second); err != nil {
		return err
	}
	_, err = h.lvStatus(ctx)
	return err
}

// lvHotplug runs the experiment for mode ("detach" or "report") once.
func (h *Harness) lvHotplug(ctx context.Context, mode string) *hpRun {
	if h.hp == nil {
		h.hp = map[string]*hpRun{}
	}
	if r := h.hp[mode]; r != nil {
		return r
	}
	r := &hpRun{mode: mode}
	h.hp[mode] = r
	r.err = h.hpExperiment(ctx, r)
	if r.err != nil {
		fmt.Fprintf(h.Log, "vmguest: hot-plug experiment (%s): %v\n", mode, r.err)
	}
	return r
}

func (h *Harness) hpExperiment(ctx context.Context, r *hpRun) error {
	s, err := h.lvUp(ctx)
	if err != nil {
		return fmt.Errorf("libvirt stack not up: %w", err)
	}
	nic := s.doms[lvDomain].fn
	r.bdf = nic.BDF
	b, err := parseBDF(nic.BDF)
	if err != nil {
		return err
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 15*time.Second); err != nil {
		return fmt.Errorf("before the hot-plug: %w", err)
	}
	// The daemon under the hot-plug policy, polling every second.
	pol := filepath.Join(policyDir, "policy-libvirt-hotplug-"+r.mode+".yaml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(hpPolicyText, r.mode)), 0o600); err != nil {
		return err
	}
	if err := s.stopDaemon(); err != nil {
		return err
	}
	if err := s.startDaemonArgs(ctx, h, pol, "--poll-interval", hpPoll.String()); err != nil {
		return fmt.Errorf("restart the daemon with %s: %w", pol, err)
	}
	// The domain: defined and started once, kept running across modes.
	if st, _ := virsh(ctx, "domstate", hpDomain); strings.TrimSpace(st) != "running" {
		if err := os.WriteFile(filepath.Join(lvDir, "hooks/qemu.d/01-hotplug-trace"), []byte(fmt.Sprintf(hpTraceHook, nic.BDF)), 0o755); err != nil {
			return err
		}
		xml := filepath.Join("/tmp", hpDomain+".xml")
		if err := os.WriteFile(xml, []byte(hpDomainXML), 0o644); err != nil {
			return err
		}
		if out, err := virsh(ctx, "define", xml); err != nil {
			return fmt.Errorf("virsh define %s: %v: %s", hpDomain, err, out)
		}
		t := time.Now()
		out, err := virsh(ctx, "start", hpDomain)
		fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", hpDomain, time.Since(t).Round(time.Millisecond), err, out)
		if err != nil {
			return fmt.Errorf("virsh start %s (no hostdev): %v: %s", hpDomain, err, clip(out, 300))
		}
		r.startTr = hpTraceLines()
		// The drop-in was added while libvirtd ran: it must be seen, or
		// "no hook call for the attach" would prove nothing.
		if !slices.Contains(r.startTr, "prepare begin e1000e") || !slices.Contains(r.startTr, "started begin e1000e") {
			return fmt.Errorf("the trace drop-in did not see %s start: %q", hpDomain, r.startTr)
		}
	}
	if live, err := hpLiveHasHostdev(ctx, b); err != nil || live {
		return fmt.Errorf("before the attach the live XML already lists %s (%v)", nic.BDF, err)
	}

	// The hot-plug.
	dev := filepath.Join("/tmp", hpDomain+"-hostdev.xml")
	if err := os.WriteFile(dev, []byte(fmt.Sprintf(hpHostdevXML, b[0], b[1], b[2], b[3])), 0o644); err != nil {
		return err
	}
	r.traceMark = len(hpTraceLines())
	t0 := time.Now()
	r.attachOut, r.attachErr = virsh(ctx, "attach-device", hpDomain, dev, "--live")
	r.attachDur = time.Since(t0)
	tA := time.Now()
	fmt.Fprintf(h.Log, "vmguest: virsh attach-device %s --live (%v): %v\n%s\n", hpDomain, r.attachDur.Round(time.Millisecond), r.attachErr, r.attachOut)
	if r.attachErr != nil {
		return fmt.Errorf("virsh attach-device --live: %v: %s", r.attachErr, clip(r.attachOut, 300))
	}
	want := "hotplug-detached"
	if r.mode == "report" {
		want = "hotplug"
	}
	for deadline := tA.Add(hpDetectMax); r.report == nil; {
		reps, raw, err := h.hpReports(ctx, nic.BDF)
		if err != nil {
			return err
		}
		for i := range reps {
			if reps[i].Kind == want {
				r.report = &reps[i]
				r.reportLat = time.Since(tA)
			}
		}
		if r.report == nil && time.Now().After(deadline) {
			r.reports = reps
			return fmt.Errorf("no %q report naming %s and %s within %v of the attach; status: %s", want, nic.BDF, hpDomain, hpDetectMax, clip(raw, 300))
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch r.mode {
	case "detach":
		for deadline := tA.Add(30 * time.Second); ; {
			live, err := hpLiveHasHostdev(ctx, b)
			if err != nil {
				return err
			}
			if !live {
				r.liveGone, r.liveGoneLat = true, time.Since(tA)
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, r.driverErr = h.waitDriver(ctx, nic.BDF, "e1000e", 30*time.Second)
		r.driverLat = time.Since(tA)
		time.Sleep(3 * hpPoll) // a few more reconciles: nothing more must happen
	case "report":
		time.Sleep(4 * hpPoll)
		r.afterErr = func() error {
			live, err := hpLiveHasHostdev(ctx, b)
			if err != nil {
				return err
			}
			if !live {
				return fmt.Errorf("after %v the live XML no longer lists %s: the report policy detached it", 4*hpPoll, nic.BDF)
			}
			drv, _ := os.Readlink(h.devPath(nic.BDF, "driver"))
			if filepath.Base(drv) != "vfio-pci" {
				return fmt.Errorf("%s is on %q while attached, want vfio-pci", nic.BDF, filepath.Base(drv))
			}
			pid, err := readTrim("/run/libvirt/qemu/" + hpDomain + ".pid")
			if err != nil {
				return fmt.Errorf("QEMU pid file: %w", err)
			}
			group := filepath.Join("/dev/vfio", nic.IOMMUGroup)
			fds, _ := filepath.Glob("/proc/" + pid + "/fd/*")
			if !slices.ContainsFunc(fds, func(fd string) bool { l, _ := os.Readlink(fd); return l == group }) {
				return fmt.Errorf("QEMU (pid %s) does not hold %s open", pid, group)
			}
			r.afterPolls = fmt.Sprintf("after %v still in the live XML, on vfio-pci, QEMU pid %s holds %s", 4*hpPoll, pid, group)
			return nil
		}()
	}
	reps, _, err := h.hpReports(ctx, nic.BDF)
	if err != nil {
		return err
	}
	r.reports = reps
	r.trace = hpTraceLines()[r.traceMark:]
	if r.mode == "report" {
		// Leave the function to its driver and the domain stopped.
		if out, err := virsh(ctx, "detach-device", hpDomain, dev, "--live"); err != nil {
			return fmt.Errorf("virsh detach-device --live (cleanup): %v: %s", err, clip(out, 300))
		}
		if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 30*time.Second); err != nil {
			return fmt.Errorf("after the manual detach: %w", err)
		}
		if out, err := virsh(ctx, "destroy", hpDomain); err != nil {
			return fmt.Errorf("virsh destroy %s (cleanup): %v: %s", hpDomain, err, clip(out, 300))
		}
	}
	return nil
}

// hpKinds lists the kinds of reports.
func hpKinds(reps []hpReport) []string {
	var k []string
	for _, r := range reps {
		k = append(k, r.Kind)
	}
	return k
}

// libvirtHotplugNoHook (issue 7): `virsh attach-device --live` of the
// e1000e into a running domain succeeds and libvirt calls no hook for it
// (the trace drop-in saw the domain's prepare/start/started, nothing since).
func libvirtHotplugNoHook(ctx context.Context, h *Harness) Result {
	r := h.lvHotplug(ctx, "detach")
	if r.err != nil {
		return failf("%v%s", r.err, lvDiag())
	}
	if len(r.trace) != 0 {
		return failf("libvirt called hooks after the attach: %q", r.trace)
	}
	return passf("virsh attach-device %s --live (managed='yes' %s) took %.1f s: %s; hook trace at start %q, after the attach none",
		hpDomain, r.bdf, r.attachDur.Seconds(), firstLine(r.attachOut), r.startTr)
}

// libvirtHotplugDetach (issue 7): under libvirt: {hotplug: detach} the
// daemon reports the hot-plugged function (kind hotplug-detached, naming it
// and the domain) within a bounded time, once; libvirt's live XML no longer
// lists it, libvirt gave it back to e1000e, and the domain keeps running.
func libvirtHotplugDetach(ctx context.Context, h *Harness) Result {
	r := h.lvHotplug(ctx, "detach")
	if r.err != nil {
		return failf("%v%s", r.err, lvDiag())
	}
	if !r.liveGone {
		return failf("daemon reported %q (%.1f s) but libvirt's live XML still lists %s 30 s after the attach", r.report.Message, r.reportLat.Seconds(), r.bdf)
	}
	if r.driverErr != nil {
		return failf("after the detach: %v", r.driverErr)
	}
	if k := hpKinds(r.reports); !slices.Equal(k, []string{"hotplug-detached"}) {
		return failf("reports about %s on %s: %v, want exactly one hotplug-detached", r.bdf, hpDomain, k)
	}
	if out, err := virsh(ctx, "domstate", hpDomain); err != nil || strings.TrimSpace(out) != "running" {
		return failf("virsh domstate %s after the detach: %v: %q, want running", hpDomain, err, out)
	}
	if len(r.trace) != 0 {
		return failf("libvirt called hooks during the hot-plug or the detach: %q", r.trace)
	}
	return passf("report after %.1f s (poll %v): %s %s; live XML without it after %.1f s; on e1000e after %.1f s; domain running; no hook call",
		r.reportLat.Seconds(), hpPoll, r.report.Kind, r.report.Message, r.liveGoneLat.Seconds(), r.driverLat.Seconds())
}

// libvirtHotplugReport (issue 7): under libvirt: {hotplug: report} the
// daemon reports the hot-plugged function (kind hotplug) once and leaves it
// attached: after several poll intervals the live XML lists it, it is on
// vfio-pci and QEMU holds its VFIO group.
func libvirtHotplugReport(ctx context.Context, h *Harness) Result {
	r := h.lvHotplug(ctx, "report")
	if r.err != nil {
		return failf("%v%s", r.err, lvDiag())
	}
	if r.afterErr != nil {
		return failf("%v", r.afterErr)
	}
	if k := hpKinds(r.reports); !slices.Equal(k, []string{"hotplug"}) {
		return failf("reports about %s on %s: %v, want exactly one hotplug", r.bdf, hpDomain, k)
	}
	if len(r.trace) != 0 {
		return failf("libvirt called hooks after the attach: %q", r.trace)
	}
	return passf("report after %.1f s: %s %s; %s; no hook call", r.reportLat.Seconds(), r.report.Kind, r.report.Message, r.afterPolls)
}
