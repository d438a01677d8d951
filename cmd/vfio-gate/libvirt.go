package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	lvhook "github.com/vfio-gate/vfio-gate/hooks/libvirt"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/conn"
	"github.com/vfio-gate/vfio-gate/hooks/libvirt/phase"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
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
	dom, nets, err := conn.DefinedDomain(uri, lvSocket, name)
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		switch {
		case n.Err != nil:
			fmt.Fprintf(e.errw, "vfio-gate: warning: network %s: %v: cannot tell whether it hands out PCI functions\n", n.Name, n.Err)
		case n.ForwardMode == "hostdev":
			fmt.Fprintf(e.errw, "vfio-gate: warning: <interface type='network'> uses network %s, a hostdev pool: libvirt picks the PCI function after prepare, so the hook cannot gate it; use <interface type='hostdev'> with a source address\n", n.Name)
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
	fmt.Fprintf(e.errw, "vfio-gate: preflight of domain %s: %d host PCI function(s), confidential: %v\n", name, len(dom.BDFs()), conf)
	ds, deferred, err := lvhook.PreflightDaemon(ctx, daemon.NewClient(g.daemonSocket), dom, conf)
	switch {
	case err == nil:
		fmt.Fprintf(e.errw, "vfio-gate: decided by the daemon at %s\n", g.daemonSocket)
		return finishPreflight(e, g, ds, policy.ModeEnforce, deferred)
	case !errors.Is(err, daemon.ErrNotRunning):
		return withCode(exitUnavailable, err)
	}
	fmt.Fprintf(e.errw, "vfio-gate: daemon not running: checking in-process\n")
	s, err := openGate(e, g, f, setupOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	ds, deferred, err = lvhook.PreflightGate(ctx, s.Host, name, dom, conf)
	var lse *lvhook.LaunchSecurityError
	switch {
	case errors.As(err, &lse):
		return withCode(exitDenied, err)
	case err != nil:
		return lockErr(err)
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
