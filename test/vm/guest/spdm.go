//go:build linux

package main

// The spdm-* scenarios (issue 13) run in the SPDM boots of test/vm/run:
// QEMU >= 9.1 with NVMe functions whose DOE mailboxes forward CMA-SPDM to
// "vfio-gate emulate" processes on the host (-device nvme,spdm_port=PORT),
// one per device profile. /etc/spdm/devices maps profile to BDF; the good
// device's trust anchors are /etc/spdm/ca-good.pem. Every exchange goes
// through the guest kernel's /sys/bus/pci/devices/BDF/config.

import (
	"bufio"
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

const (
	spdmDevicesFile = "/etc/spdm/devices"
	spdmCA          = "/etc/spdm/ca-good.pem"
	spdmPolicyDir   = "/etc/vfio-gate-spdm"
)

// spdmState is what the spdm-* scenarios share.
type spdmState struct {
	devs        map[string]string // profile -> BDF
	bootDriver  map[string]string // BDF -> driver bound when the first scenario ran
	bootStatus  map[string]uint32 // BDF -> DOE Status at that time
	doeOffset   map[string]int    // BDF -> DOE capability offset
	policy      string            // captured policy, once spdm-capture-allow ran
	prepareErr  error
	prepareDone bool
}

// spdmPrepare (once): reads the device map, waits for every function, notes
// its driver and DOE Status as the kernel left them after boot, then
// unbinds the driver (nvme) so user space may drive the mailbox.
func (h *Harness) spdmPrepare(ctx context.Context) (*spdmState, error) {
	if h.spdm == nil {
		h.spdm = &spdmState{devs: map[string]string{}, bootDriver: map[string]string{}, bootStatus: map[string]uint32{}, doeOffset: map[string]int{}}
	}
	s := h.spdm
	if s.prepareDone {
		return s, s.prepareErr
	}
	s.prepareDone = true
	s.prepareErr = func() error {
		f, err := os.Open(spdmDevicesFile)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) == 2 {
				s.devs[fs[0]] = fs[1]
			}
		}
		if s.devs["good"] == "" {
			return fmt.Errorf("%s names no good device", spdmDevicesFile)
		}
		for _, bdf := range s.devs {
			if err := waitPath(ctx, h.devPath(bdf, "config"), 10*time.Second); err != nil {
				return err
			}
			// nvme probes asynchronously: give it the chance to bind.
			drv, _ := h.waitDriver(ctx, bdf, "nvme", 10*time.Second)
			s.bootDriver[bdf] = drv
			off, st, err := h.doeStatus(bdf)
			if err != nil {
				return err
			}
			s.doeOffset[bdf], s.bootStatus[bdf] = off, st
			if err := h.unbind(ctx, bdf); err != nil {
				return err
			}
		}
		return nil
	}()
	return s, s.prepareErr
}

// doeStatus reads the DOE capability offset and Status register of bdf.
func (h *Harness) doeStatus(bdf string) (int, uint32, error) {
	cfg, err := openConfig(h.devPath(bdf, "config"), false)
	if err != nil {
		return 0, 0, err
	}
	defer cfg.Close()
	img, err := cfg.readAll()
	if err != nil {
		return 0, 0, err
	}
	caps, err := extCaps(img)
	if err != nil {
		return 0, 0, err
	}
	if len(caps[extCapIDDOE]) == 0 {
		return 0, 0, fmt.Errorf("%s: no DOE extended capability", bdf)
	}
	off := caps[extCapIDDOE][0]
	st, err := cfg.read32(off + doeStatus)
	return off, st, err
}

// spdmDev is the first step of every spdm-* scenario: the BDF of profile.
func (h *Harness) spdmDev(ctx context.Context, profile string) (string, *Result) {
	s, err := h.spdmPrepare(ctx)
	if err != nil {
		r := failf("spdm setup: %v", err)
		return "", &r
	}
	bdf := s.devs[profile]
	if bdf == "" {
		r := failf("no %s device in %s", profile, spdmDevicesFile)
		return "", &r
	}
	return bdf, nil
}

// cmaName is the CMA SAN a function's config space calls for (PCIe r6.1
// §6.31.3), read from sysfs; the QEMU NVMe function has no DSN.
func (h *Harness) cmaName(bdf string) (string, error) {
	var v [6]uint64
	for i, n := range []string{"vendor", "device", "class", "revision", "subsystem_vendor", "subsystem_device"} {
		x, err := readHex(h.devPath(bdf, n))
		if err != nil {
			return "", err
		}
		v[i] = x
	}
	return fmt.Sprintf("Vendor=%04x:Device=%04x:CC=%06x:REV=%02x:SSVID=%04x:SSID=%04x", v[0], v[1], v[2], v[3], v[4], v[5]), nil
}

// attestJSON is the part of `attest --json` the spdm-* scenarios check.
type attestJSON struct {
	Identity struct {
		BDF        string `json:"bdf"`
		FromCMASAN bool   `json:"from_cma_san"`
	} `json:"identity"`
	HasCMA     bool   `json:"has_cma"`
	Version    string `json:"version"`
	Algorithms struct {
		Asym string `json:"base_asym"`
		Hash string `json:"base_hash"`
	} `json:"algorithms"`
	Chains []struct {
		Slot     int    `json:"slot"`
		Verified bool   `json:"verified"`
		Error    string `json:"error"`
		CMASAN   *struct {
			Raw string `json:"raw"`
		} `json:"cma_san"`
	} `json:"certificate_chains"`
	ChallengeVerified bool `json:"challenge_verified"`
	Measurements      []struct {
		Index int `json:"index"`
	} `json:"measurements"`
	MeasSigVerified bool `json:"measurements_signature_verified"`
	Session         *struct {
		Established bool   `json:"established"`
		Version     string `json:"version"`
		AEAD        string `json:"aead"`
	} `json:"session"`
	TDISP *struct {
		Version string `json:"version"`
		State   string `json:"state"`
	} `json:"tdisp"`
	RoundTrips int   `json:"round_trips"`
	DurationNS int64 `json:"duration_ns"`
	Timings    []struct {
		Step       string `json:"step"`
		DurationNS int64  `json:"duration_ns"`
	} `json:"timings"`
}

// bench is the BENCH line of an attestation: all round trips (requester
// crypto included), and VCA alone (GET_VERSION, GET_CAPABILITIES,
// NEGOTIATE_ALGORITHMS: three exchanges with no crypto on either side, so
// vca_per_exchange_ms is the transport's own latency).
func (a *attestJSON) bench(name string) string {
	var vca int64
	for _, t := range a.Timings {
		if t.Step == "version" {
			vca = t.DurationNS
		}
	}
	return fmt.Sprintf("BENCH %s round_trips=%d total_ms=%.2f per_exchange_ms=%.3f vca_ms=%.2f vca_per_exchange_ms=%.3f",
		name, a.RoundTrips, float64(a.DurationNS)/1e6, float64(a.DurationNS)/1e6/float64(max(a.RoundTrips, 1)),
		float64(vca)/1e6, float64(vca)/1e6/3)
}

// proved is a one-line account of what an attestation proved.
func (a *attestJSON) proved() string {
	var b strings.Builder
	fmt.Fprintf(&b, "SPDM %s %s/%s", a.Version, a.Algorithms.Asym, a.Algorithms.Hash)
	for _, c := range a.Chains {
		fmt.Fprintf(&b, ", slot %d chain verified=%v", c.Slot, c.Verified)
		if c.CMASAN != nil {
			fmt.Fprintf(&b, " SAN %s", c.CMASAN.Raw)
		}
	}
	fmt.Fprintf(&b, ", challenge=%v, %d measurements signed=%v", a.ChallengeVerified, len(a.Measurements), a.MeasSigVerified)
	if a.Session != nil {
		fmt.Fprintf(&b, ", session established=%v (%s %s)", a.Session.Established, a.Session.Version, a.Session.AEAD)
	}
	if a.TDISP != nil {
		fmt.Fprintf(&b, ", TDISP %s %s", a.TDISP.Version, a.TDISP.State)
	}
	if a.RoundTrips > 0 {
		fmt.Fprintf(&b, "; %d round trips in %.1f ms (%.2f ms each)", a.RoundTrips, float64(a.DurationNS)/1e6, float64(a.DurationNS)/1e6/float64(a.RoundTrips))
	}
	return b.String()
}

// spdmAttest runs `attest BDF --trust-anchor CA --json EXTRA...` and checks
// that it passed through sysfs with the function's own identity.
func (h *Harness) spdmAttest(ctx context.Context, extra ...string) (*attestJSON, string, Result, bool) {
	if r := h.need(ctx, "attest"); r != nil {
		return nil, "", *r, false
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return nil, "", *r, false
	}
	args := append([]string{"--json", "attest", bdf, "--trust-anchor", spdmCA}, extra...)
	out, errOut, code := h.run(ctx, args...)
	var a attestJSON
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		return nil, bdf, failf("attest %s %v: exit %d, output not JSON (%v): %q %q", bdf, extra, code, err, out, errOut), false
	}
	if code != 0 {
		return &a, bdf, failf("attest %s %v: exit %d: %s; proved: %s", bdf, extra, code, firstLine(errOut), a.proved()), false
	}
	if a.Identity.BDF != bdf || a.Identity.FromCMASAN || !a.HasCMA || len(a.Chains) == 0 || !a.Chains[0].Verified || !a.ChallengeVerified || !a.MeasSigVerified || len(a.Measurements) == 0 {
		return &a, bdf, failf("attest %s %v passed but did not prove it through the function: identity %+v; %s", bdf, extra, a.Identity, a.proved()), false
	}
	if h.spdmExternal == "" {
		want, err := h.cmaName(bdf)
		if err != nil {
			return &a, bdf, failf("%v", err), false
		}
		if san := a.Chains[0].CMASAN; san == nil || san.Raw != want {
			return &a, bdf, failf("%s: leaf CMA SAN %+v, the function's config space says %s", bdf, san, want), false
		}
	}
	return &a, bdf, Result{}, true
}

// spdmKernelDOE records what the guest kernel did to the NVMe functions' DOE
// mailboxes before user space came: the driver it bound (nvme), the DOE
// Status it left (neither Busy nor Error nor Data Object Ready), the
// features it lists in sysfs (doe_features/, kernels that have it) and its
// DOE log lines. Since 6.5 the kernel creates a mailbox for every DOE
// capability at enumeration (pci_doe_init: abort, then discovery); QEMU
// answers discovery itself, so nothing reaches the SPDM responder, and no
// kernel driver sends CMA-SPDM (docs/real-kernel-spdm.md). Raw DOE is
// refused while nvme is bound; the setup unbinds it.
func spdmKernelDOE(ctx context.Context, h *Harness) Result {
	s, err := h.spdmPrepare(ctx)
	if err != nil {
		return failf("spdm setup: %v", err)
	}
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	var facts []string
	for _, p := range []string{"good", "tampered", "bad-signature", "wrong-root", "busy-storm", "not-ready-forever"} {
		bdf := s.devs[p]
		if bdf == "" {
			return failf("no %s device in %s", p, spdmDevicesFile)
		}
		st := s.bootStatus[bdf]
		if st&(doeStatBusy|doeStatError|doeStatReady) != 0 {
			return failf("%s (%s): DOE Status 0x%08x after boot: the kernel left the mailbox busy, in error or with a response pending", bdf, p, st)
		}
		if s.bootDriver[bdf] != "nvme" {
			return failf("%s (%s): driver at boot %q, want nvme", bdf, p, s.bootDriver[bdf])
		}
		if p == "good" {
			facts = append(facts, fmt.Sprintf("%s DOE at 0x%x, driver at boot %q, status 0x%08x", bdf, s.doeOffset[bdf], s.bootDriver[bdf], st))
			if ents, err := os.ReadDir(h.devPath(bdf, "doe_features")); err == nil {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				facts = append(facts, fmt.Sprintf("kernel-discovered doe_features %v", names))
			} else {
				facts = append(facts, "no doe_features in sysfs")
			}
		}
	}
	dmesg, _ := h.dmesgMatching(ctx, "DOE")
	return passf("kernel %s: %s; kernel DOE log lines: %d %s", strings.TrimSpace(string(rel)), strings.Join(facts, "; "), len(dmesg), strings.Join(dmesg, " | "))
}

// dmesgMatching returns the kernel log lines containing sub, but not the
// command line (which names the scenarios).
func (h *Harness) dmesgMatching(ctx context.Context, sub string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "dmesg").Output()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, sub) && !strings.Contains(l, "command line") && !strings.Contains(l, "Command line") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines, err
}

// spdmScan: `scan --json` lists the good NVMe's DOE mailbox with the
// features discovery, cma-spdm and secured-cma-spdm.
func spdmScan(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "scan"); r != nil {
		return *r
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return *r
	}
	entries, _, err := h.scan(ctx)
	if err != nil {
		return failf("%v", err)
	}
	for _, e := range entries {
		if e.BDF != bdf {
			continue
		}
		if len(e.DOE) != 1 {
			return failf("%s: %d DOE mailboxes listed: %s", bdf, len(e.DOE), e.Raw)
		}
		for _, w := range []string{"cma-spdm", "secured-cma-spdm"} {
			if !slices.Contains(e.DOE[0].Features, w) {
				return failf("%s: features %v, missing %s (skipped %q)", bdf, e.DOE[0].Features, w, e.DOE[0].Skipped)
			}
		}
		return passf("%s: DOE at %s features %v", bdf, e.DOE[0].Offset, e.DOE[0].Features)
	}
	return failf("scan --json lists no %s among %d functions", bdf, len(entries))
}

// spdmAttestPlain: attest through the guest kernel's sysfs config; what it
// proved, and the per-exchange latency (BENCH line).
func spdmAttestPlain(ctx context.Context, h *Harness) Result {
	a, bdf, r, ok := h.spdmAttest(ctx)
	if !ok {
		return r
	}
	if a.RoundTrips > 0 {
		fmt.Println(a.bench("spdm-guest-sysfs@" + h.Tag))
	}
	who := "vfio-gate emulate"
	if h.spdmExternal != "" {
		who = "external responder " + h.spdmExternal
	}
	return passf("%s (%s): %s", bdf, who, a.proved())
}

func spdmAttestSession(ctx context.Context, h *Harness) Result {
	a, bdf, r, ok := h.spdmAttest(ctx, "--session")
	if !ok {
		return r
	}
	if a.Session == nil || !a.Session.Established {
		return failf("%s: attest --session: no session: %s", bdf, a.proved())
	}
	return passf("%s: %s", bdf, a.proved())
}

func spdmAttestTDISP(ctx context.Context, h *Harness) Result {
	a, bdf, r, ok := h.spdmAttest(ctx, "--tdisp")
	if !ok {
		return r
	}
	if a.Session == nil || !a.Session.Established || a.TDISP == nil || a.TDISP.State == "" {
		return failf("%s: attest --tdisp: session or TDISP state missing: %s", bdf, a.proved())
	}
	return passf("%s: %s", bdf, a.proved())
}

// spdmTDISPCycle: lock -> report -> start -> state -> stop of the good
// NVMe's TDI (interface ID = its BDF, as emulate --bdf says).
func spdmTDISPCycle(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "tdisp cycle"); r != nil {
		return *r
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return *r
	}
	out, errOut, code := h.run(ctx, "--json", "tdisp", "cycle", bdf, "--trust-anchor", spdmCA)
	var c struct {
		Steps []struct {
			Request string `json:"request"`
			OK      bool   `json:"ok"`
			State   string `json:"state"`
		} `json:"steps"`
		FinalState string `json:"final_state"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || code != 0 {
		return failf("tdisp cycle %s: exit %d (%v): %q %q", bdf, code, err, out, errOut)
	}
	var steps []string
	for _, st := range c.Steps {
		if !st.OK {
			return failf("tdisp cycle %s: step %s failed: %s", bdf, st.Request, out)
		}
		steps = append(steps, st.Request+"->"+st.State)
	}
	if len(steps) < 4 || c.FinalState != "CONFIG_UNLOCKED" {
		return failf("tdisp cycle %s: steps %v, final state %q", bdf, steps, c.FinalState)
	}
	return passf("%s: %s; final %s", bdf, strings.Join(steps, ", "), c.FinalState)
}

// spdmGate runs a gate command with the captured policy, /dev/tpmrm0 and
// the guest's state directory, with --json.
func (h *Harness) spdmGate(ctx context.Context, args ...string) (*checkOut, int, string, error) {
	if h.spdm == nil || h.spdm.policy == "" {
		return nil, 0, "", fmt.Errorf("no captured policy (spdm-capture-allow did not pass)")
	}
	if err := os.MkdirAll(h.State, 0o700); err != nil {
		return nil, 0, "", err
	}
	g := append([]string{"--policy", h.spdm.policy, "--tpm", filepath.Join(h.Dev, "tpmrm0"), "--state-dir", h.State, "--json"}, args...)
	out, errOut, code := h.run(ctx, g...)
	var c checkOut
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		return nil, code, errOut, fmt.Errorf("vfio-gate %s: exit %d, output is not JSON (%v): %q, stderr %q", strings.Join(args, " "), code, err, out, errOut)
	}
	return &c, code, errOut, nil
}

// spdmCaptureAllow: `policy capture` of the good NVMe (through sysfs), then
// `check --confidential` under that policy allows, recorded in the TPM.
func spdmCaptureAllow(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "policy capture", "check"); r != nil {
		return *r
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return *r
	}
	out, errOut, code := h.run(ctx, "policy", "capture", bdf, "--trust-anchor", spdmCA, "--name", "qemu-nvme-spdm")
	if code != 0 {
		return failf("policy capture %s: exit %d: %s", bdf, code, errOut)
	}
	if err := os.MkdirAll(spdmPolicyDir, 0o700); err != nil {
		return failf("%v", err)
	}
	if err := os.Chmod(spdmPolicyDir, 0o700); err != nil {
		return failf("%v", err)
	}
	p := filepath.Join(spdmPolicyDir, "policy.yaml")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		return failf("%v", err)
	}
	h.spdm.policy = p
	c, code, errOut, err := h.spdmGate(ctx, "check", "--confidential", bdf)
	if err != nil {
		return failf("%v", err)
	}
	if code != 0 || c.Decision != "allow" || len(c.Devices) != 1 || !c.Devices[0].Recorded {
		return failf("check --confidential %s under the captured policy: exit %d, %+v, stderr %q", bdf, code, c, errOut)
	}
	if f, _ := h.function(bdf); f == nil || f.Driver != "" {
		return failf("%s: check bound a driver", bdf)
	}
	return passf("%s: captured rule %s (%d lines); check --confidential: allow, recorded", bdf, c.Devices[0].Rule, strings.Count(out, "\n"))
}

// spdmDeny: check --confidential of the profile's NVMe under the captured
// policy denies with one of codes and exit code exit (3 for a policy deny
// such as measurement-mismatch, 2 when attestation failed: signature, chain,
// protocol), within limit, recorded, nothing bound.
func spdmDeny(profile string, exit int, limit time.Duration, codes ...string) func(context.Context, *Harness) Result {
	return func(ctx context.Context, h *Harness) Result {
		if r := h.need(ctx, "check"); r != nil {
			return *r
		}
		bdf, r := h.spdmDev(ctx, profile)
		if r != nil {
			return *r
		}
		start := time.Now()
		c, code, errOut, err := h.spdmGate(ctx, "check", "--confidential", bdf)
		took := time.Since(start)
		if err != nil {
			return failf("%v", err)
		}
		got := c.codes()
		hit := false
		for _, w := range codes {
			hit = hit || slices.Contains(got, w)
		}
		if code != exit || c.Decision != "deny" || !hit || len(c.Devices) != 1 || !c.Devices[0].Recorded {
			return failf("check --confidential %s (%s): exit %d, decision %s, reasons %v, recorded %v; want exit %d, deny %v, recorded; stderr %q",
				bdf, profile, code, c.Decision, got, len(c.Devices) == 1 && c.Devices[0].Recorded, exit, codes, firstLine(errOut))
		}
		if took > limit {
			return failf("%s (%s): deny %v took %v, over the %v bound", bdf, profile, got, took.Round(time.Millisecond), limit)
		}
		if f, _ := h.function(bdf); f == nil || f.Driver != "" {
			return failf("%s: a driver was bound after a deny", bdf)
		}
		msg := ""
		if len(c.Devices[0].Reasons) > 0 {
			msg = c.Devices[0].Reasons[0].Message
			if len(msg) > 160 {
				msg = msg[:160] + "..."
			}
		}
		return passf("%s (%s): deny %v (exit %d) in %v, recorded, nothing bound: %s", bdf, profile, got, code, took.Round(time.Millisecond), msg)
	}
}

// spdmBindRelease: the good NVMe back on nvme, then `bind --confidential`
// moves it to vfio-pci, attests it there (nvme owns the mailbox before),
// /dev/vfio/N appears; `release` gives it back to nvme.
func spdmBindRelease(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "bind", "release"); r != nil {
		return *r
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return *r
	}
	if err := h.bindOverride(ctx, bdf, ""); err != nil {
		return failf("%v", err)
	}
	if _, err := h.waitDriver(ctx, bdf, "nvme", 15*time.Second); err != nil {
		return failf("before bind: %v", err)
	}
	c, code, errOut, err := h.spdmGate(ctx, "bind", "--confidential", bdf)
	if err != nil {
		return failf("%v", err)
	}
	if code != 0 || c.Decision != "allow" {
		return failf("bind --confidential %s (from nvme): exit %d, %+v, stderr %q", bdf, code, c, errOut)
	}
	f, err := h.function(bdf)
	if err != nil {
		return failf("%v", err)
	}
	if f.Driver != "vfio-pci" {
		return failf("after bind: driver %q, want vfio-pci", f.Driver)
	}
	dev := filepath.Join(h.Dev, "vfio", f.IOMMUGroup)
	if err := waitPath(ctx, dev, 5*time.Second); err != nil {
		return failf("after bind: %v", err)
	}
	flags, err := vfioGroupFlags(dev)
	if err != nil || flags&vfioGroupFlagViable == 0 {
		return failf("after bind: %s flags 0x%x, %v", dev, flags, err)
	}
	out, errOut, code := h.run(ctx, "--policy", h.spdm.policy, "--tpm", filepath.Join(h.Dev, "tpmrm0"), "--state-dir", h.State, "release", bdf)
	if code != 0 {
		return failf("release %s: exit %d: %s %s", bdf, code, out, errOut)
	}
	if _, err := h.waitDriver(ctx, bdf, "nvme", 15*time.Second); err != nil {
		return failf("after release: %v", err)
	}
	// Leave it unbound for the scenarios after this one.
	if err := h.unbind(ctx, bdf); err != nil {
		return failf("%v", err)
	}
	return passf("%s: nvme -> bind --confidential (attested on vfio-pci, allow, rule %s) -> %s viable -> release -> nvme", bdf, c.Devices[0].Rule, dev)
}

// spdmLogVerify: every decision of the spdm-* scenarios was extended into
// the PCR and logged; log verify replays the log against the guest's TPM.
func spdmLogVerify(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "log verify"); r != nil {
		return *r
	}
	// Every segment of every boot (zero-padded names sort).
	segs, _ := filepath.Glob(filepath.Join(h.State, "events", "boot-*", "seg-*.cel.jsonl"))
	if len(segs) == 0 {
		return failf("no event log segment after the spdm scenarios")
	}
	n := 0
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			return failf("event log: %v", err)
		}
		n += strings.Count(string(b), "\n")
	}
	args := []string{"--tpm", filepath.Join(h.Dev, "tpmrm0"), "--state-dir", h.State, "log", "verify"}
	if h.spdm != nil && h.spdm.policy != "" {
		args = append([]string{"--policy", h.spdm.policy}, args...)
	}
	out, errOut, code := h.run(ctx, args...)
	if code != 0 {
		return failf("log verify of %d records: exit %d: %s %s", n, code, out, errOut)
	}
	return passf("log verify: %d records replay to the PCR through /dev/tpmrm0: %s", n, firstLine(out))
}

// spdmAudit: `vfio-gate audit` guards the good NVMe while `vfio-gate attest`
// (its own process) drives the DOE mailbox and then this process writes 0 to
// the DOE Control register (a foreign write: no Go, no Abort). The gate's
// writes must be attributed to the attest PID and the foreign one to this
// PID, all in region doe-mailbox.
func spdmAudit(ctx context.Context, h *Harness) Result {
	if r := h.need(ctx, "audit", "attest"); r != nil {
		return *r
	}
	bdf, r := h.spdmDev(ctx, "good")
	if r != nil {
		return *r
	}
	off := h.spdm.doeOffset[bdf]
	aud, err := h.startAudit(ctx, 60*time.Second, "--device", bdf)
	if err != nil {
		return failf("%v", err)
	}
	defer aud.cancel()
	gate := exec.CommandContext(ctx, h.VfioGate, "attest", bdf, "--trust-anchor", spdmCA)
	gout, gerr := gate.CombinedOutput()
	gatePID := uint32(gate.Process.Pid)
	if gerr != nil {
		aud.abort()
		return failf("attest %s under audit: %v: %s", bdf, gerr, firstLine(string(gout)))
	}
	c, err := openConfig(h.devPath(bdf, "config"), true)
	if err != nil {
		return failf("%v", err)
	}
	werr := c.write32(off+doeCtrl, 0)
	c.Close()
	if werr != nil {
		return failf("foreign DOE Control write: %v", werr)
	}
	aerr, events, err := aud.stop(2 * time.Second)
	if err != nil {
		return failf("%v", err)
	}
	me := uint32(os.Getpid())
	var gateWrites, gateDOE, foreign int
	var gateComm string
	for _, e := range events {
		if e.Device != bdf || e.Op != "write" {
			continue
		}
		switch e.PID {
		case gatePID:
			gateWrites++
			gateComm = e.Comm
			if e.Region == "doe-mailbox" {
				gateDOE++
			}
		case me:
			if e.Offset != uint32(off+doeCtrl) || e.Region != "doe-mailbox" || e.Value == nil || *e.Value != 0 {
				return failf("foreign write event %+v, want offset 0x%x region doe-mailbox value 0", e, off+doeCtrl)
			}
			foreign++
		default:
			return failf("write event from pid %d (%s), neither attest (%d) nor this process (%d): %+v", e.PID, e.Comm, gatePID, me, e)
		}
	}
	if gateWrites == 0 || gateDOE != gateWrites || foreign != 1 {
		return failf("audit (exit %v): %d writes by attest pid %d (%d in doe-mailbox), %d foreign writes by pid %d; want >0, all doe-mailbox, exactly 1: %s",
			aerr, gateWrites, gatePID, gateDOE, foreign, me, aud.stderr.String())
	}
	return passf("%s: %d DOE mailbox writes by attest (pid %d, %s) and 1 foreign Control write by pid %d, all region doe-mailbox", bdf, gateWrites, gatePID, gateComm, me)
}
