package main

import (
	"context"
	"errors"
	"fmt"
	"io"

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
		Use:     "libvirt",
		Short:   "libvirt integration commands (preflight)",
		Long:    helpText("libvirt.long"),
		Example: helpText("libvirt.example"),
	}
	c.AddCommand(newPreflightCmd(e, g))
	return c
}

func newPreflightCmd(e *env, g *globals) *cobra.Command {
	var f gateFlags
	var uri, lvSocket string
	var confidential bool
	c := &cobra.Command{
		Use:     "preflight DOMAIN",
		Short:   "Run the checks the libvirt hook would run for a defined domain, without starting it",
		Long:    helpText("preflight.long"),
		Example: helpText("preflight.example"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dom, nets, err := conn.DefinedDomain(uri, lvSocket, args[0])
			if err != nil {
				return err
			}
			for _, n := range nets {
				if w := n.Warning(); w != "" {
					fmt.Fprintf(e.errw, "vfio-gate: warning: %s\n", w)
				}
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

// runPreflight checks the domain's functions as the hook's prepare step
// would: through the daemon when it runs, else in-process.
func runPreflight(ctx context.Context, e *env, g *globals, f *gateFlags, name string, dom *lvhook.Domain, conf bool) error {
	if len(dom.PCI) == 0 {
		return g.write(e, "decision", rpt.Decisions{Decision: policy.DecisionAllow, Devices: []rpt.Device{}},
			func(w io.Writer) { fmt.Fprintf(w, "domain %s has no host PCI functions: nothing to gate\n", name) })
	}
	open := func() (*gate.Host, error) {
		s, err := openGate(e, g, f, nil)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	ds, deferred, mode, err := lvhook.Preflight(ctx, daemon.NewClient(g.daemonSocket), g.daemonSocket, open, name, dom, conf, e.errw)
	var de *lvhook.DaemonError
	var lse *lvhook.LaunchSecurityError
	switch {
	case errors.As(err, &de):
		return withCode(exitUnavailable, err)
	case errors.As(err, &lse):
		return withCode(exitDenied, err)
	case err != nil:
		return lockErr(err) // the gate's locks; openGate's errors pass unchanged
	}
	return finishPreflight(e, g, ds, mode, deferred)
}

// finishPreflight prints the checked decisions and the deferred functions;
// the exit code is check's over the checked ones (deferred is no deny).
func finishPreflight(e *env, g *globals, ds []gate.Decision, mode policy.Mode, deferred []phase.Deferred) error {
	if err := g.write(e, "decision", rpt.PreflightOf(ds, mode, deferred), func(w io.Writer) { rpt.WritePreflight(w, ds, mode, deferred) }); err != nil {
		return err
	}
	if code := decisionsExit(ds); code != exitOK {
		return quietCode(code, fmt.Errorf("exit %d", code))
	}
	return nil
}
