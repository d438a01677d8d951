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
		Use:   "scan [BDF...]",
		Short: "List PCI functions with IDs, driver, IOMMU group and DOE mailbox features",
		Example: `  vfio-gate scan --no-doe                      # read-only, any machine
  sudo vfio-gate scan 0000:3b:00.0             # with DOE discovery where allowed
  vfio-gate scan --json --no-doe 0000:00:03.0`,
		Long: `scan lists every PCI function (or the ones named, as 0000:3b:00.0) with vendor and device
IDs, class, bound driver, IOMMU group and the DOE mailboxes found in extended config space.

DOE discovery runs only where user space may drive the mailbox: no driver or vfio-pci bound,
tsm/connect empty, kernel lockdown "none", running as root. It holds the per-function lock
(--lock-dir) while it runs. Otherwise the mailbox is listed with the reason discovery was
skipped. --no-doe never writes to any device (read-only scan).

Needs: root for extended config space (without CAP_SYS_ADMIN the kernel serves 64 bytes, so DOE
and the serial number are not read) and for discovery. No policy, TPM or daemon.

With --json the output is one JSON object, {"schema": "vfio-gate/scan/v1", "functions": [...]};
see docs/json.md and docs/guide.md "vfio-gate scan".

Exit codes: 0 success (per-function problems are listed in "errors"); 1 usage error
(malformed BDF); 4 a named function does not exist or vanished during the scan.`,
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
