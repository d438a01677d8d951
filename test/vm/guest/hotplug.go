//go:build linux

package main

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
	hpDomain     = "vfio-gate-hotplug"
	hpDomainACPI = "vfio-gate-hotplug-acpi" // i440fx, ACPI hot-plug: nothing acknowledges an unplug
	hpTrace      = "/tmp/libvirt-hotplug-trace"
	hpPoll       = time.Second // the daemon's --poll-interval here
	hpDetectMax  = 60 * time.Second
)

// hpTraceHook: a qemu.d drop-in that records every hook call for the
// hot-plug domains with the e1000e's driver at that moment (%s: its BDF).
const hpTraceHook = `#!/bin/sh
cat >/dev/null
case $1 in
` + hpDomain + `|` + hpDomainACPI + `) ;;
*) exit 0 ;;
esac
d=$(readlink /sys/bus/pci/devices/%s/driver)
echo "$1 $2 $3 ${d##*/}" >>` + hpTrace + `
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

// hpDomainACPIXML: the same on machine type pc (i440fx) with ACPI (without
// <acpi/> libvirt runs QEMU with -no-acpi and pci.0 refuses hot-plug), whose
// PCI hot-plug is ACPI's: QEMU asks the guest to eject the device and waits for it; this
// guest (no OS) never does, so a detach request stays pending for good.
const hpDomainACPIXML = `<domain type='qemu'>
  <name>` + hpDomainACPI + `</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
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
	err       error  // the experiment could not run
	mode      string // policy libvirt.hotplug
	domain    string
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

	// report: a second hot-plug of the same function after a manual detach.
	replugErr    error
	replugReport *hpReport
	replugLat    time.Duration

	// acpi (detach on hpDomainACPI): what stayed after the detach request.
	liveAtEnd   bool
	driverAtEnd string
}

type hpReport struct {
	Kind    string    `json:"kind"`
	Domain  string    `json:"domain"`
	BDF     string    `json:"bdf"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// hpTraceLines returns the trace lines of domain: "OP SUBOP DRIVER".
func hpTraceLines(domain string) []string {
	b, _ := os.ReadFile(hpTrace)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if rest, ok := strings.CutPrefix(l, domain+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// hpReports returns the daemon's reports about bdf on domain.
func (h *Harness) hpReports(ctx context.Context, domain, bdf string) ([]hpReport, string, error) {
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
		if r.BDF == bdf && r.Domain == domain {
			out = append(out, r)
		}
	}
	return out, st.Raw, nil
}

// hpLiveHasHostdev reports whether libvirt's live XML of domain lists a
// PCI hostdev with the e1000e's source address.
func hpLiveHasHostdev(ctx context.Context, domain string, b [4]string) (bool, error) {
	out, err := virsh(ctx, "dumpxml", domain)
	if err != nil {
		return false, fmt.Errorf("virsh dumpxml %s: %v: %s", domain, err, clip(out, 200))
	}
	addr := fmt.Sprintf("domain='0x%s' bus='0x%s' slot='0x%s' function='0x%s'", b[0], b[1], b[2], b[3])
	return strings.Contains(out, "<hostdev") && strings.Contains(out, addr), nil
}

// lvHotplug runs the experiment once per key: "detach" and "report" (the
// policy's libvirt.hotplug) on hpDomain, "acpi" (detach) on hpDomainACPI.
func (h *Harness) lvHotplug(ctx context.Context, key string) *hpRun {
	if h.hp == nil {
		h.hp = map[string]*hpRun{}
	}
	if r := h.hp[key]; r != nil {
		return r
	}
	r := &hpRun{mode: key, domain: hpDomain}
	if key == "acpi" {
		r.mode, r.domain = "detach", hpDomainACPI
	}
	h.hp[key] = r
	r.err = h.hpExperiment(ctx, r)
	if r.err != nil {
		fmt.Fprintf(h.Log, "vmguest: hot-plug experiment (%s): %v\n", key, r.err)
	}
	return r
}

// hpExperiment runs one hot-plug experiment into r: daemon under the
// hot-plug policy, domain running, live attach, the daemon's report, what
// follows per mode, a second hot-plug (report), cleanup.
func (h *Harness) hpExperiment(ctx context.Context, r *hpRun) error {
	nic, b, err := h.hpDaemon(ctx, r)
	if err != nil {
		return err
	}
	if err := h.hpStartDomain(ctx, r, nic); err != nil {
		return err
	}
	if live, err := hpLiveHasHostdev(ctx, r.domain, b); err != nil || live {
		return fmt.Errorf("before the attach the live XML of %s already lists %s (%v)", r.domain, nic.BDF, err)
	}

	// The hot-plug.
	dev := filepath.Join("/tmp", "hotplug-hostdev.xml")
	if err := os.WriteFile(dev, []byte(fmt.Sprintf(hpHostdevXML, b[0], b[1], b[2], b[3])), 0o644); err != nil {
		return err
	}
	r.traceMark = len(hpTraceLines(r.domain))
	tA, err := h.hpAttach(ctx, r, dev)
	if err != nil {
		return err
	}
	kinds := []string{"hotplug-detached"}
	switch {
	case r.domain == hpDomainACPI:
		kinds = []string{"hotplug-detached", "hotplug-detach-pending", "hotplug"} // whatever it says first
	case r.mode == "report":
		kinds = []string{"hotplug"}
	}
	if r.report, r.reportLat, err = h.hpWaitReport(ctx, r, nic.BDF, tA, 0, kinds...); err != nil {
		return err
	}
	if err := h.hpAfterReport(ctx, r, nic, b, tA); err != nil {
		return err
	}
	reps, _, err := h.hpReports(ctx, r.domain, nic.BDF)
	if err != nil {
		return err
	}
	r.reports = reps
	r.trace = hpTraceLines(r.domain)[r.traceMark:]
	if r.mode == "report" {
		r.replugErr = h.hpReplug(ctx, r, nic, dev)
	}
	// Leave the function to its driver and the domain stopped (libvirt
	// removes the hostdev and gives the function back when QEMU exits).
	if r.mode == "report" || r.domain == hpDomainACPI {
		if out, err := virsh(ctx, "destroy", r.domain); err != nil {
			return fmt.Errorf("virsh destroy %s (cleanup): %v: %s", r.domain, err, clip(out, 300))
		}
		if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 30*time.Second); err != nil {
			return fmt.Errorf("after virsh destroy %s: %w", r.domain, err)
		}
	}
	return nil
}

// hpDaemon brings the libvirt stack up and restarts the daemon under the
// hot-plug policy of r.mode, polling every hpPoll; it returns the e1000e
// and its address.
func (h *Harness) hpDaemon(ctx context.Context, r *hpRun) (*pciFunc, [4]string, error) {
	s, err := h.lvUp(ctx)
	if err != nil {
		return nil, [4]string{}, fmt.Errorf("libvirt stack not up: %w", err)
	}
	nic := s.doms[lvDomain].fn
	r.bdf = nic.BDF
	b, err := parseBDF(nic.BDF)
	if err != nil {
		return nil, b, err
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 15*time.Second); err != nil {
		return nil, b, fmt.Errorf("before the hot-plug: %w", err)
	}
	// The daemon under the hot-plug policy, polling every second.
	pol := filepath.Join(policyDir, "policy-libvirt-hotplug-"+r.mode+".yaml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(hpPolicyText, r.mode)), 0o600); err != nil {
		return nil, b, err
	}
	if err := s.stopDaemon(); err != nil {
		return nil, b, err
	}
	if err := s.startDaemon(ctx, h, pol, "--poll-interval", hpPoll.String()); err != nil {
		return nil, b, fmt.Errorf("restart the daemon with %s: %w", pol, err)
	}
	return nic, b, nil
}

// hpStartDomain defines and starts r.domain (without a hostdev) once; it is
// kept running across runs.
func (h *Harness) hpStartDomain(ctx context.Context, r *hpRun, nic *pciFunc) error {
	if st, _ := virsh(ctx, "domstate", r.domain); strings.TrimSpace(st) == "running" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(lvDir, "hooks/qemu.d/01-hotplug-trace"), []byte(fmt.Sprintf(hpTraceHook, nic.BDF)), 0o755); err != nil {
		return err
	}
	text := hpDomainXML
	if r.domain == hpDomainACPI {
		text = hpDomainACPIXML
	}
	xml := filepath.Join("/tmp", r.domain+".xml")
	if err := os.WriteFile(xml, []byte(text), 0o644); err != nil {
		return err
	}
	if out, err := virsh(ctx, "define", xml); err != nil {
		return fmt.Errorf("virsh define %s: %v: %s", r.domain, err, out)
	}
	t := time.Now()
	out, err := virsh(ctx, "start", r.domain)
	fmt.Fprintf(h.Log, "vmguest: virsh start %s (%v): %v\n%s\n", r.domain, time.Since(t).Round(time.Millisecond), err, out)
	if err != nil {
		return fmt.Errorf("virsh start %s (no hostdev): %v: %s", r.domain, err, clip(out, 300))
	}
	r.startTr = hpTraceLines(r.domain)
	// The drop-in was added while libvirtd ran: it must be seen, or
	// "no hook call for the attach" would prove nothing.
	if !slices.Contains(r.startTr, "prepare begin e1000e") || !slices.Contains(r.startTr, "started begin e1000e") {
		return fmt.Errorf("the trace drop-in did not see %s start: %q", r.domain, r.startTr)
	}
	return nil
}

// hpAttach hot-plugs the hostdev in dev into r.domain (virsh attach-device
// --live) and returns when the attach returned.
func (h *Harness) hpAttach(ctx context.Context, r *hpRun, dev string) (time.Time, error) {
	t0 := time.Now()
	r.attachOut, r.attachErr = virsh(ctx, "attach-device", r.domain, dev, "--live")
	r.attachDur = time.Since(t0)
	fmt.Fprintf(h.Log, "vmguest: virsh attach-device %s --live (%v): %v\n%s\n", r.domain, r.attachDur.Round(time.Millisecond), r.attachErr, r.attachOut)
	if r.attachErr != nil {
		return time.Time{}, fmt.Errorf("virsh attach-device %s --live: %v: %s", r.domain, r.attachErr, clip(r.attachOut, 300))
	}
	return time.Now(), nil
}

// hpWaitReport waits for the (n+1)th report naming the function bdf and
// the domain whose kind is in kinds.
func (h *Harness) hpWaitReport(ctx context.Context, r *hpRun, bdf string, tA time.Time, n int, kinds ...string) (*hpReport, time.Duration, error) {
	for deadline := tA.Add(hpDetectMax); ; {
		reps, raw, err := h.hpReports(ctx, r.domain, bdf)
		if err != nil {
			return nil, 0, err
		}
		seen := 0
		for i := range reps {
			if slices.Contains(kinds, reps[i].Kind) {
				if seen == n {
					return &reps[i], time.Since(tA), nil
				}
				seen++
			}
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("no %v report naming %s and %s within %v of the attach (%d before); status: %s", kinds, bdf, r.domain, hpDetectMax, n, clip(raw, 300))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hpAfterReport records what follows the report: on hpDomainACPI what
// stayed after several reconciles; for detach when the live XML lost the
// hostdev and e1000e got it back; for report what still holds.
func (h *Harness) hpAfterReport(ctx context.Context, r *hpRun, nic *pciFunc, b [4]string, tA time.Time) error {
	switch {
	case r.domain == hpDomainACPI:
		time.Sleep(5 * hpPoll) // several more reconciles
		live, err := hpLiveHasHostdev(ctx, r.domain, b)
		if err != nil {
			return err
		}
		r.liveAtEnd = live
		l, _ := os.Readlink(h.devPath(nic.BDF, "driver"))
		r.driverAtEnd = filepath.Base(l)
	case r.mode == "detach":
		for deadline := tA.Add(30 * time.Second); ; {
			live, err := hpLiveHasHostdev(ctx, r.domain, b)
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
	case r.mode == "report":
		time.Sleep(4 * hpPoll)
		r.afterErr = h.hpStillAttached(ctx, r, nic, b)
	}
	return nil
}

// hpStillAttached (report mode) checks that the function is still in the
// live XML, on vfio-pci, with its group held open by QEMU.
func (h *Harness) hpStillAttached(ctx context.Context, r *hpRun, nic *pciFunc, b [4]string) error {
	live, err := hpLiveHasHostdev(ctx, r.domain, b)
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
	pid, err := readTrim("/run/libvirt/qemu/" + r.domain + ".pid")
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
}

// hpReplug (report mode) detaches by hand and hot-plugs the same function
// again: a new hot-plug, to be reported again.
func (h *Harness) hpReplug(ctx context.Context, r *hpRun, nic *pciFunc, dev string) error {
	if out, err := virsh(ctx, "detach-device", r.domain, dev, "--live"); err != nil {
		return fmt.Errorf("virsh detach-device --live: %v: %s", err, clip(out, 300))
	}
	if _, err := h.waitDriver(ctx, nic.BDF, "e1000e", 30*time.Second); err != nil {
		return fmt.Errorf("after the manual detach: %w", err)
	}
	time.Sleep(3 * hpPoll) // the daemon sees it gone
	tA, err := h.hpAttach(ctx, r, dev)
	if err != nil {
		return err
	}
	r.replugReport, r.replugLat, err = h.hpWaitReport(ctx, r, nic.BDF, tA, 1, "hotplug")
	return err
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
		r.domain, r.bdf, r.attachDur.Seconds(), firstLine(r.attachOut), r.startTr)
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
		return failf("reports about %s on %s: %v, want exactly one hotplug-detached", r.bdf, r.domain, k)
	}
	if out, err := virsh(ctx, "domstate", r.domain); err != nil || strings.TrimSpace(out) != "running" {
		return failf("virsh domstate %s after the detach: %v: %q, want running", r.domain, err, out)
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
		return failf("reports about %s on %s: %v, want exactly one hotplug", r.bdf, r.domain, k)
	}
	if len(r.trace) != 0 {
		return failf("libvirt called hooks after the attach: %q", r.trace)
	}
	return passf("report after %.1f s: %s %s; %s; no hook call", r.reportLat.Seconds(), r.report.Kind, r.report.Message, r.afterPolls)
}

// libvirtHotplugReplug (issue 7): under report, the same function detached
// by hand and hot-plugged again into the same running domain is a new
// hot-plug without a decision and is reported again.
func libvirtHotplugReplug(ctx context.Context, h *Harness) Result {
	r := h.lvHotplug(ctx, "report")
	if r.err != nil {
		return failf("%v%s", r.err, lvDiag())
	}
	if r.replugErr != nil {
		return failf("second hot-plug of %s into %s: %v", r.bdf, r.domain, r.replugErr)
	}
	return passf("virsh detach-device, then attach-device --live again: reported again after %.1f s: %s", r.replugLat.Seconds(), r.replugReport.Kind)
}

// libvirtHotplugPending (issue 7): under detach, on a domain whose guest
// never acknowledges an unplug (i440fx ACPI hot-plug, no OS), libvirt only
// sends the unplug request: the hostdev stays in the live XML and on
// vfio-pci. The daemon must say so (hotplug-detach-pending), not claim
// hotplug-detached, and must not repeat the request or the report every
// poll.
func libvirtHotplugPending(ctx context.Context, h *Harness) Result {
	r := h.lvHotplug(ctx, "acpi")
	if r.err != nil {
		return failf("%v%s", r.err, lvDiag())
	}
	k := hpKinds(r.reports)
	if !r.liveAtEnd {
		// The guest did acknowledge: then detached is the truth.
		if !slices.Equal(k, []string{"hotplug-detached"}) {
			return failf("the hostdev left the live XML, reports %v, want exactly one hotplug-detached", k)
		}
		return passf("unplug completed: reports %v; %s on %s", k, r.bdf, r.driverAtEnd)
	}
	if slices.Contains(k, "hotplug-detached") {
		return failf("the daemon reported hotplug-detached (%q) but %s is still in %s's live XML and on %s %v after the attach; reports %v",
			r.report.Message, r.bdf, r.domain, r.driverAtEnd, 5*hpPoll, k)
	}
	if !slices.Equal(k, []string{"hotplug-detach-pending"}) {
		return failf("reports about %s on %s: %v, want exactly one hotplug-detach-pending (first: %q)", r.bdf, r.domain, k, r.report.Message)
	}
	if len(r.trace) != 0 {
		return failf("libvirt called hooks after the attach: %q", r.trace)
	}
	return passf("report after %.1f s: %s %s; still in the live XML and on %s %v later, reported once; virsh destroy gave it back to e1000e",
		r.reportLat.Seconds(), r.report.Kind, r.report.Message, r.driverAtEnd, 5*hpPoll)
}
