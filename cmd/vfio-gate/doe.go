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
		Use:   "doe",
		Short: "Low-level DOE mailbox commands (discovery, CXL CDAT)",
		Long: `Raw access to a function's DOE mailboxes, under the same rules as attestation: root, no
kernel driver other than vfio-pci bound, no platform TSM, kernel lockdown "none", and the
per-function lock held for the whole command (--lock-dir; --timeout bounds it, lock wait
included). Otherwise the command refuses with exit 4 and names the blocker. These commands
write to the device's mailbox registers: never run them on a function a VM is using.`,
		Example: `  sudo vfio-gate doe discover 0000:0d:00.0
  sudo vfio-gate --json doe cdat 0000:0d:00.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
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
		Long: `Runs DOE discovery on every DOE mailbox of BDF and lists the features (vendor, type, name).
Raw DOE is refused (exit 4) when a kernel driver other than vfio-pci is bound, a platform TSM
owns the function, kernel lockdown is active, or not running as root. The per-function lock
is held while the mailboxes are used.`,
		Args: cobra.ExactArgs(1),
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
		Long: `Reads the Coherent Device Attribute Table of a CXL function through the DOE "CXL Table Access"
feature (vendor 0x1E98, type 2): entry 0 (the header), then each structure, following the next
handle the device returns until 0xFFFF (bounded). Checks the header length, the checksum (all
bytes sum to 0) and that the structures tile the table, then lists them by type (DSMAS, DSLBIS,
DSMSCIS, DSIS, DSEMTS, SSLBIS). Same rules as "doe discover" for who may touch the mailbox.
Exit 0 when the table is valid, 2 when the device returned a malformed table or bad checksum,
4 when the mailbox cannot be used or has no Table Access feature.`,
		Args: cobra.ExactArgs(1),
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
