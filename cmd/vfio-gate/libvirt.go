package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
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

Note: at the real prepare a managed='yes' hostdev is still on its host driver; if it is on
that driver now, preflight gives the same mailbox-owned deny the hook would.

Output and exit codes as for check: 0 all allowed (or no host PCI functions), 3 denied by
policy, 4 only unavailable devices, 5 TPM; 1 usage, libvirt unreachable, unknown domain,
bad policy.`,
		Example: `  vfio-gate libvirt preflight vm1
  vfio-gate libvirt preflight vm1 --uri qemu:///system --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			lc, err := conn.Dial(uri, lvSocket)
			if err != nil {
				return err
			}
			x, err := lc.DomainXML(args[0])
			if err != nil {
				lc.Close()
				return err
			}
			dom, err := lvhook.ParseDomain(strings.NewReader(x))
			if err != nil {
				lc.Close()
				return err
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
			lc.Close()
			conf := confidential || dom.Confidential(nil)
			if len(dom.PCI) == 0 {
				if g.json {
					return writeJSON(e.out, checkJSON{Decision: policy.DecisionAllow, Devices: []deviceJSON{}})
				}
				fmt.Fprintf(e.out, "domain %s has no host PCI functions: nothing to gate\n", args[0])
				return nil
			}
			bdfs := dom.BDFs()
			fmt.Fprintf(e.errw, "vfio-gate: preflight of domain %s: %d host PCI function(s), confidential: %v\n", args[0], len(bdfs), conf)
			r, err := daemon.NewClient(g.daemonSocket).Check(ctx, daemon.CheckRequest{Confidential: conf, BDFs: bdfs})
			switch {
			case err == nil:
				fmt.Fprintf(e.errw, "vfio-gate: decided by the daemon at %s\n", g.daemonSocket)
				return finishDecisions(e, g, fromDaemon(r), policy.ModeEnforce, false, false)
			case !errors.Is(err, daemon.ErrNotRunning):
				return withCode(exitUnavailable, err)
			}
			fmt.Fprintf(e.errw, "vfio-gate: daemon not running: checking in-process\n")
			s, err := openGate(e, g, &f, setupOptions{})
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := s.gate.Check(ctx, gate.Request{BDFs: bdfs, Confidential: conf, Domain: args[0]})
			if err != nil {
				return lockErr(err)
			}
			return finishDecisions(e, g, ds, s.pol.Mode, false, false)
		},
	}
	f.add(c)
	c.Flags().StringVar(&uri, "uri", "qemu:///system", "libvirt URI")
	c.Flags().StringVar(&lvSocket, "libvirt-socket", conn.DefaultSocket, "libvirtd's read-write socket")
	c.Flags().BoolVar(&confidential, "confidential", false, "check as for a confidential domain even without <launchSecurity>")
	return c
}

// fromDaemon turns the daemon's answer into decisions for check's output
// and exit code. A tpm reason means the decision was not recorded; a bind
// reason is a bind error.
func fromDaemon(r *daemon.CheckResponse) []gate.Decision {
	out := make([]gate.Decision, 0, len(r.Devices))
	for _, d := range r.Devices {
		gd := gate.Decision{BDF: d.BDF, Identity: attest.Identity{BDF: d.BDF.String(), VendorID: d.VendorID, DeviceID: d.DeviceID}, Recorded: true,
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
