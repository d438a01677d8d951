package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/doe/cdat"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

type doeFlags struct {
	lockDir string
	timeout time.Duration
}

func newDOECmd(e *env, g *globals) *cobra.Command {
	f := &doeFlags{}
	c := &cobra.Command{
		Use:     "doe",
		Short:   "Low-level DOE mailbox commands (discovery, CXL CDAT)",
		Long:    helpText("doe.long"),
		Example: helpText("doe.example"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.PersistentFlags().StringVar(&f.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	c.PersistentFlags().DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on the whole command (lock wait included)")
	c.AddCommand(newDOEDiscoverCmd(e, g, f), newDOECDATCmd(e, g, f))
	return c
}

// withMailboxes opens bdf for raw DOE (target.PCI: the per-function lock,
// MayDriveDOE, a writable config space, discovery) and calls fn with the
// open function (its mailboxes).
func withMailboxes(ctx context.Context, e *env, g *globals, f *doeFlags, arg string, fn func(context.Context, *target.Conn) error) error {
	bdf, err := pci.ParseBDF(arg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	conn, err := (&target.SysfsPCI{Root: g.sysfsRoot, Options: &pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid, Logger: g.log},
		BDF: bdf, LockDir: f.lockDir, DOE: &doe.Options{Logger: g.log}}).Open(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer conn.Close()
	return fn(ctx, conn)
}

func newDOEDiscoverCmd(e *env, g *globals, f *doeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "discover BDF",
		Short:   "List the data object protocols of every DOE mailbox of a function",
		Example: "  sudo vfio-gate doe discover 0000:0d:00.0",
		Long:    helpText("doe-discover.long"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, conn *target.Conn) error {
				out := rpt.DOEDiscoverOf(conn.Mailboxes)
				if err := jsonOrText(e, g, "doe-discover", out, rpt.WriteDOEDiscover); err != nil {
					return err
				}
				if failed := out.Failed(); failed > 0 {
					return quietCode(exitUnavailable, fmt.Errorf("discovery failed on %d mailbox(es)", failed))
				}
				return nil
			})
		},
	}
}

func newDOECDATCmd(e *env, g *globals, f *doeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "cdat BDF",
		Short:   "Read and check a CXL device's CDAT through DOE Table Access",
		Example: "  sudo vfio-gate doe cdat --json 0000:0d:00.0",
		Long:    helpText("doe-cdat.long"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, conn *target.Conn) error {
				mb := conn.Offering(doe.FeatureCXLCDAT)
				if mb == nil {
					return withCode(exitUnavailable, fmt.Errorf("%s: no DOE mailbox offers CXL Table Access (cxl-cdat)", args[0]))
				}
				raw, tab, err := cdat.ReadTable(ctx, mb)
				if ce := (*cdat.Error)(nil); errors.As(err, &ce) {
					return withCode(exitAttestation, err)
				} else if err != nil {
					return withCode(exitUnavailable, err)
				}
				return jsonOrText(e, g, "doe-cdat", rpt.CDATOf(mb.Offset(), raw, tab), rpt.WriteCDAT)
			})
		},
	}
}
