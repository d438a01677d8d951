package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tdisp"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// HookStep is one libvirt hook call of the demo's second part.
type HookStep struct {
	Domain   string `json:"domain"`
	BDF      string `json:"bdf"`
	Op       string `json:"op"` // "prepare begin", ...
	Exit     int    `json:"exit"`
	TDIState string `json:"tdi_state"` // on the device, after the call
	Stderr   string `json:"stderr,omitempty"`
	// Want is the expected exit and TDI state; OK says they were met.
	Want string `json:"want"`
	OK   bool   `json:"ok"`
}

// CVMPolicy is the demo policy with the rule also requiring a locked
// TDI (tdisp.require_lock), for confidential domains.
func CVMPolicy() string {
	return strings.Replace(Policy(), "# vfio-gate demo policy", "# vfio-gate demo policy for confidential domains", 1) +
		"    tdisp:\n      require_lock: true\n"
}

// LibvirtConfig is what the demo's libvirt part runs on: the world, and
// the first part's system and TPM recorder.
type LibvirtConfig struct {
	World       *World
	System      *pci.System
	Recorder    *tpm.Recorder
	EvidenceDir string    // where the gate stores evidence
	Out         io.Writer // the narration; nil for none (--json)
}

// Libvirt plays libvirt starting two confidential domains through the
// qemu hook, against the daemon's backend (in-process: no socket, no root)
// with a tdisp.Broker over the software devices, under CVMPolicy: the
// good device's TDI is locked at prepare in the session it is attested in,
// started at started begin and unlocked at release; the tampered device is
// refused at prepare and its TDI left unlocked.
func Libvirt(ctx context.Context, c LibvirtConfig) ([]HookStep, error) {
	out, human, w, dir := c.Out, c.Out != nil, c.World, c.World.Dir
	pp := filepath.Join(dir, "policy-cvm.yaml")
	if err := os.WriteFile(pp, []byte(CVMPolicy()), 0o600); err != nil {
		return nil, err
	}
	pol, err := policy.Load(pp, &policy.LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		return nil, err
	}
	stateDir, lockDir := filepath.Join(dir, "daemon"), filepath.Join(dir, "locks")
	g, err := gate.New(gate.Options{System: c.System, Policy: pol, Recorder: c.Recorder, Evidence: evstore.Open(c.EvidenceDir, evstore.Options{}), LockDir: lockDir, StateDir: stateDir})
	if err != nil {
		return nil, err
	}
	j, err := tdisp.OpenJournal(stateDir, nil)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	br, err := tdisp.NewBroker(tdisp.BrokerConfig{Journal: j, Open: attest.SessionOpenerFor(c.System, lockDir, &attest.Options{Timeout: 10 * time.Second}, pol.TrustAnchors)})
	if err != nil {
		return nil, err
	}
	defer br.Close(context.Background())
	b, err := daemon.NewBackend(daemon.BackendOptions{Gate: g, Recorder: c.Recorder, System: c.System, StateDir: stateDir, TDIs: br})
	if err != nil {
		return nil, err
	}
	hook := &lvhook.Hook{Client: lvhook.DaemonClient{C: b}}
	if human {
		fmt.Fprintf(out, "\nlibvirt: two confidential domains (<launchSecurity type='sev-snp'/>) start through the qemu hook;\n"+
			"the vfio-gate daemon (in-process here) decides under %s, whose rule also requires a locked TDI\n", pp)
	}
	type call struct {
		op, want string
		exit     int
		state    tdisp.State
	}
	var steps []HookStep
	run := func(domain string, bdf string, calls []call) {
		b, _ := pci.ParseBDF(bdf)
		dev, _ := w.configs[b].(*emu.Device)
		xml := fmt.Sprintf(`<domain type='kvm'><name>%s</name><devices><hostdev mode='subsystem' type='pci' managed='yes'>
<source><address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/></source></hostdev></devices>
<launchSecurity type='sev-snp'/></domain>`, domain, b.Domain, b.Bus, b.Device, b.Function)
		if human {
			fmt.Fprintf(out, "\n$ virsh start %s        (hostdev %s)\n", domain, bdf)
		}
		for _, c := range calls {
			var errw strings.Builder
			ops := strings.Fields(c.op)
			code := hook.Run(ctx, []string{domain, ops[0], ops[1], "-"}, strings.NewReader(xml), &errw)
			st := "unknown"
			if dev != nil {
				st = dev.TDI().State().String()
			}
			x := HookStep{Domain: domain, BDF: bdf, Op: c.op, Exit: code, TDIState: st, Stderr: strings.TrimSpace(errw.String()),
				Want: fmt.Sprintf("exit %d, TDI %s", c.exit, c.state), OK: code == c.exit && st == c.state.String()}
			steps = append(steps, x)
			if human {
				fmt.Fprintf(out, "  hook %-15s exit %d  TDI %-16s %s\n", c.op, code, st, c.want)
				for _, l := range strings.Split(x.Stderr, "\n") {
					if l != "" {
						fmt.Fprintf(out, "    %s\n", l)
					}
				}
			}
		}
	}
	run("cvm", w.Devices[0].BDF, []call{
		{"prepare begin", "attested in an SPDM session, TDI locked in it, then decided: allow", 0, tdisp.StateConfigLocked},
		{"start begin", "the prepare decision stands (the domain holds the locked TDI)", 0, tdisp.StateConfigLocked},
		{"started begin", "the daemon starts the TDI it locked", 0, tdisp.StateRun},
		{"release end", "the guest stopped: TDI stopped, session ended", 0, tdisp.StateConfigUnlocked},
	})
	run("cvm-tampered", w.Devices[1].BDF, []call{
		{"prepare begin", "locked for the decision, denied, unlocked again: libvirt aborts the start", 1, tdisp.StateConfigUnlocked},
		{"release end", "libvirt releases after the aborted start", 0, tdisp.StateConfigUnlocked},
	})
	if len(br.Held()) != 0 {
		steps = append(steps, HookStep{Op: "after release", Want: "no TDI held", TDIState: fmt.Sprintf("%d held", len(br.Held()))})
	}
	return steps, nil
}
