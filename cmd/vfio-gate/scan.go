package main

import (
	"context"
	"io"
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
	sys, err := pci.Open(g.sysfsRoot, &pci.Options{ConfigOpener: e.configOpener, Logger: g.log})
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
	o := &target.ScanOptions{NoDOE: sf.noDOE, LockDir: sf.lockDir, Timeout: sf.timeout, Logger: g.log}
	facts, missing, err := target.ScanFunctions(ctx, sys, bdfs, len(named) == 0, o)
	if err != nil {
		return err
	}
	if err := jsonOrText(e, g, "scan", rpt.ScanOf(facts), func(w io.Writer, s rpt.Scan) error { return rpt.WriteScan(w, s.Functions) }); err != nil {
		return err
	}
	return missing
}
