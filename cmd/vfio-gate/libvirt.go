package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func newLibvirtCmd(e *env, g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "libvirt",
		Short: "libvirt integration commands (preflight)",
		Long: `libvirt groups the commands that talk to libvirtd through go-libvirt (never from the hook,
which must not call back into libvirtd). See also install-hook, uninstall-hook and libvirt-hook.`,
		Example: `  vfio-gate libvirt preflight vm1`,
	}
	c.AddCommand(newPreflightCmd(e, g))
	return c
}

func newPreflightCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var uri, lvSocket string
	var confidential bool
	c := &cobra.Command{
		Use:   "preflight DOMAIN",
		Short: "Run the checks the libvirt hook would run for a defined domain, without starting it",
		Long: `preflight fetches the persistent definition of DOMAIN from libvirtd (go-libvirt, --uri) and
checks its host PCI functions (<hostdev type='pci'>, <interface type='hostdev'>) as the hook's
prepare step would: through the vfio-gate daemon when it runs (--daemon-socket), otherwise
in-process with the gate (--policy, --tpm, --sysfs-root). The domain is confidential when its
<launchSecurity> is sev, sev-snp, tdx or s390-pv (or with --confidential). Decisions are
recorded in the TPM as with check; nothing is bound, locked or held for the domain.

Two phases, as in the hook: a managed='yes' hostdev that is on a host driver now (nvme,
mlx5_core, ...) is "deferred": libvirt moves it to vfio-pci before start begin, where the hook
has it checked; preflight cannot check it without moving it, so it lists it as "deferred:
checked at start begin" (not recorded, not counted as a deny). Every other function (on
vfio-pci, on no driver, or managed='no') is checked now, as at prepare; managed='no' on a
host driver is denied mailbox-owned, as the hook would.

Output and exit codes as for check: 0 all allowed or deferred (or no host PCI functions), 3
denied by policy, 4 only unavailable devices, 5 TPM; 1 usage, libvirt unreachable, unknown
domain, bad policy. With --json, deferred functions carry "decision": "deferred", and the
top-level decision is "deferred" when nothing is denied but something is deferred.`,
		Example: `  vfio-gate libvirt preflight vm1
  vfio-gate libvirt preflight vm1 --uri qemu:///system --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dom, err := preflightDomain(e, uri, lvSocket, args[0])
			if err != nil {
				return err
			}
			return runPreflight(cmd.Context(), e, g, &f, args[0], dom, confidential || dom.Confidential(nil))
		},
	}
	f.add(c)
	c.Flags().StringVar(&uri, "uri", "qemu:///system", "libvirt URI")
	c.Flags().StringVar(&lvSocket, "libvirt-socket", conn.DefaultSocket, "libvirtd's read-write socket")
	c.Flags().BoolVar(&confidential, "confidential", false, "check as for a confidential domain even without <launchSecurity>")
	return c
}

// preflightDomain fetches the domain's persistent definition from libvirt
// and warns about network interfaces the hook cannot gate.
func preflightDomain(e *env, uri, lvSocket, name string) (*lvhook.Domain, error) {
	lc, err := conn.Dial(uri, lvSocket)
	if err != nil {
		return nil, err
	}
	defer lc.Close()
	x, err := lc.DomainXML(name)
	if err != nil {
		return nil, err
	}
	dom, err := lvhook.ParseDomain(strings.NewReader(x))
	if err != nil {
		return nil, err
	}
	for _, n := range dom.Networks {
		mode, err := lc.NetworkForwardMode(n)
		switch {
		case err != nil:
			fmt.Fprintf(e.errw, "vfio-gate: warning: network %s: %v: cannot tell whether it hands out PCI functions\n", n, err)
		case mode == "hostdev":
			fmt.Fprintf(e.errw, "vfio-gate: warning: <interface type='network'> uses network %s, a hostdev pool: libvirt picks the PCI function after prepare, so the hook cannot gate it; use <interface type='hostdev'> with a source address\n", n)
		}
	}
	return dom, nil
}

// runPreflight checks the domain's functions as the hook's prepare step
// would: through the daemon when it runs, else in-process.
func runPreflight(ctx context.Context, e *env, g *globals, f *gateFlags, name string, dom *lvhook.Domain, conf bool) error {
	if len(dom.PCI) == 0 {
		if g.json {
			return writeJSON(e.out, "decision", rpt.Decisions{Decision: policy.DecisionAllow, Devices: []rpt.Device{}})
		}
		fmt.Fprintf(e.out, "domain %s has no host PCI functions: nothing to gate\n", name)
		return nil
	}
	bdfs := dom.BDFs()
	fmt.Fprintf(e.errw, "vfio-gate: preflight of domain %s: %d host PCI function(s), confidential: %v\n", name, len(bdfs), conf)
	var managed []pci.BDF
	for _, h := range dom.PCI {
		if h.Managed && !slices.Contains(managed, h.BDF) {
			managed = append(managed, h.BDF)
		}
	}
	r, err := daemon.NewClient(g.daemonSocket).Check(ctx, daemon.CheckRequest{Confidential: conf, LaunchSecurity: dom.LaunchSecurity, BDFs: bdfs,
		Phase: daemon.PhasePrepare, Managed: managed, Lock: conf}) // no domain: a lock is a probe, stopped again
	switch {
	case err == nil:
		fmt.Fprintf(e.errw, "vfio-gate: decided by the daemon at %s\n", g.daemonSocket)
		var deferred []deferredFn
		checked := &daemon.CheckResponse{Decision: r.Decision}
		for _, d := range r.Devices {
			if d.Decision != daemon.DecisionDeferred {
				checked.Devices = append(checked.Devices, d)
				continue
			}
			msg := "checked at start begin"
			if len(d.Reasons) > 0 {
				msg = d.Reasons[0].Message
			}
			deferred = append(deferred, deferredFn{BDF: d.BDF, Message: msg})
		}
		return finishPreflight(e, g, fromDaemon(checked), policy.ModeEnforce, deferred)
	case !errors.Is(err, daemon.ErrNotRunning):
		return withCode(exitUnavailable, err)
	}
	fmt.Fprintf(e.errw, "vfio-gate: daemon not running: checking in-process\n")
	return preflightInProcess(ctx, e, g, f, name, dom, conf, managed)
}

// preflightInProcess is runPreflight without a daemon: the gate in this
// process, managed functions on a host driver deferred to start begin.
func preflightInProcess(ctx context.Context, e *env, g *globals, f *gateFlags, name string, dom *lvhook.Domain, conf bool, managed []pci.BDF) error {
	s, err := openGate(e, g, f, setupOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	if lsConf, known := s.pol.Libvirt.Confidential(dom.LaunchSecurity); !known {
		return withCode(exitDenied, fmt.Errorf("domain %s has <launchSecurity type='%s'>, which vfio-gate does not know (built in: %s): "+
			"the daemon refuses its functions (%s); if it is a confidential VM type, add it to the policy's libvirt.confidential_types",
			name, dom.LaunchSecurity, strings.Join(policy.BuiltinConfidentialTypes, ", "), daemon.CodeLaunchSecurityUnknown))
	} else if lsConf {
		conf = true
	}
	var deferred []deferredFn
	var now []pci.BDF
	for _, b := range dom.BDFs() {
		if fn, err := s.sys.Function(b); err == nil && slices.Contains(managed, b) && fn.Driver != "" && fn.Driver != pci.VFIODriver {
			deferred = append(deferred, deferredFn{BDF: b, Message: fmt.Sprintf("on host driver %s; libvirt moves it to vfio-pci before start: checked at start begin", fn.Driver)})
			continue
		}
		now = append(now, b)
	}
	var ds []gate.Decision
	if len(now) > 0 {
		if ds, err = s.gate.Check(ctx, gate.Request{BDFs: now, Confidential: conf, Domain: name}); err != nil {
			return lockErr(err)
		}
	}
	return finishPreflight(e, g, ds, s.pol.Mode, deferred)
}

// deferredFn is a function whose check the hook defers to start begin.
type deferredFn = phase.Deferred

// finishPreflight prints the checked decisions and the deferred functions;
// the exit code is check's over the checked ones (deferred is no deny).
func finishPreflight(e *env, g *globals, ds []gate.Decision, mode policy.Mode, deferred []deferredFn) error {
	if g.json {
		if err := writeJSON(e.out, "decision", rpt.PreflightOf(ds, mode, deferred)); err != nil {
			return err
		}
	} else {
		rpt.WritePreflight(e.out, ds, mode, deferred)
	}
	if code := decisionsExit(ds); code != exitOK {
		return quietCode(code, fmt.Errorf("exit %d", code))
	}
	return nil
}

// fromDaemon turns the daemon's answer into decisions for check's output
// and exit code. A tpm reason means the decision was not recorded; a bind
// reason is a bind error.
func fromDaemon(r *daemon.CheckResponse) []gate.Decision {
	out := make([]gate.Decision, 0, len(r.Devices))
	for _, d := range r.Devices {
		gd := gate.Decision{BDF: d.BDF, Identity: attest.Identity{BDF: d.BDF.String(), VendorID: uint16(d.VendorID), DeviceID: uint16(d.DeviceID)}, Recorded: true,
			Verdict: policy.Verdict{Decision: d.Decision, Allow: d.Decision == policy.DecisionAllow, Rule: d.Rule, Mode: policy.ModeEnforce}}
		gd.EvidenceDigest, _ = hex.DecodeString(d.EvidenceDigest)
		for _, rs := range d.Reasons {
			gd.Verdict.Reasons = append(gd.Verdict.Reasons, policy.Reason{Code: policy.Code(rs.Code), Message: rs.Message})
			switch rs.Code {
			case "tpm":
				gd.Recorded, gd.Err = false, fmt.Errorf("%w: %s", tpm.ErrTPM, rs.Message)
			case "bind":
				gd.Err = errors.New(rs.Message)
			}
		}
		out = append(out, gd)
	}
	return out
}
