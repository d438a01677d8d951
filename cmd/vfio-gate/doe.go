package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// MayDriveDOE, a writable config space, discovery) and calls fn with its
// mailboxes.
func withMailboxes(ctx context.Context, e *env, g *globals, f *doeFlags, arg string, fn func(context.Context, []target.Mailbox) error) error {
	bdf, err := pci.ParseBDF(arg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	log := g.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := (&target.SysfsPCI{Root: g.sysfsRoot, Options: &pci.Options{ConfigOpener: e.configOpener, Geteuid: e.geteuid, Logger: log},
		BDF: bdf, LockDir: f.lockDir, DOE: &doe.Options{Logger: log}}).Open(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer conn.Close()
	return fn(ctx, conn.Mailboxes)
}

func newDOEDiscoverCmd(e *env, g *globals, f *doeFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "discover BDF",
		Short:   "List the data object protocols of every DOE mailbox of a function",
		Example: "  sudo vfio-gate doe discover 0000:0d:00.0",
		Long:    helpText("doe-discover.long"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, mbs []target.Mailbox) error {
				out := rpt.DOEDiscoverOf(mbs)
				if g.json {
					if err := writeJSON(e.out, "doe-discover", out); err != nil {
						return err
					}
				} else if err := rpt.WriteDOEDiscover(e.out, out); err != nil {
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
			return withMailboxes(cmd.Context(), e, g, f, args[0], func(ctx context.Context, mbs []target.Mailbox) error {
				var mb *doe.Mailbox
				for _, m := range mbs {
					if m.Err == nil && m.Supports(doe.FeatureCXLCDAT) {
						mb = m.Mailbox
						break
					}
				}
				if mb == nil {
					return withCode(exitUnavailable, fmt.Errorf("%s: no DOE mailbox offers CXL Table Access (cxl-cdat)", args[0]))
				}
				raw, err := cdat.Read(ctx, mb)
				if err != nil {
					if isCDATMalformed(err) {
						return withCode(exitAttestation, err)
					}
					return withCode(exitUnavailable, err)
				}
				tab, err := cdat.Parse(raw)
				if err != nil {
					return withCode(exitAttestation, err)
				}
				out := rpt.CDATOf(mb.Offset(), raw, tab)
				if g.json {
					return writeJSON(e.out, "doe-cdat", out)
				}
				return rpt.WriteCDAT(e.out, out)
			})
		},
	}
}

func isCDATMalformed(err error) bool {
	var ce *cdat.Error
	return errors.As(err, &ce)
}
