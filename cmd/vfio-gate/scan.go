package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/target"
)

type scanFlags struct {
	noDOE   bool
	lockDir string
	timeout time.Duration
}

func newScanCmd(e *env, g *globals) *cobra.Command {
	sf := &scanFlags{}
	c := &cobra.Command{
		Use:     "scan [BDF...]",
		Short:   "List PCI functions with IDs, driver, IOMMU group and DOE mailbox features",
		Example: helpText("scan.example"),
		Long:    helpText("scan.long"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScan(cmd.Context(), e, g, sf, args)
		},
	}
	c.Flags().BoolVar(&sf.noDOE, "no-doe", false, "do not run DOE discovery: never write to config space")
	c.Flags().StringVar(&sf.lockDir, "lock-dir", pci.DefaultLockDir, "directory of the per-function lock files")
	c.Flags().DurationVar(&sf.timeout, "timeout", 10*time.Second, "DOE discovery budget per function")
	return c
}

func runScan(ctx context.Context, e *env, g *globals, sf *scanFlags, args []string) error {
	var named []pci.BDF
	for _, a := range args {
		b, err := pci.ParseBDF(a)
		if err != nil {
			return usageErrorf("scan: %v", err)
		}
		named = append(named, b)
	}
	log := g.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sys, err := pci.Open(g.sysfsRoot, &pci.Options{ConfigOpener: e.configOpener, Logger: log})
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	defer sys.Close()

	bdfs := named
	if len(named) == 0 {
		if bdfs, err = sys.Functions(); err != nil {
			return withCode(exitUnavailable, err)
		}
	}
	entries := []rpt.ScanEntry{}
	var missing []error
	for _, b := range bdfs {
		fc, err := target.Scan(ctx, sys, b, &target.ScanOptions{NoDOE: sf.noDOE, LockDir: sf.lockDir, Timeout: sf.timeout, Logger: log})
		if err != nil {
			gone := errors.Is(err, pci.ErrNoDevice) || errors.Is(err, pci.ErrDeviceRemoved)
			if gone && len(named) == 0 {
				log.Warn("function vanished during the scan", "bdf", b.String(), "err", err)
				continue
			}
			if gone {
				missing = append(missing, err)
				continue
			}
			return err
		}
		entries = append(entries, rpt.ScanEntryOf(fc))
	}
	if g.json {
		if err := writeJSON(e.out, "scan", rpt.Scan{Functions: entries}); err != nil {
			return err
		}
	} else if err := rpt.WriteScan(e.out, entries); err != nil {
		return err
	}
	return errors.Join(missing...)
}
