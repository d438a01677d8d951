package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/pci"
)

func newAuditCmd(e *env, g *globals) *cobra.Command {
	var devices []string
	var duration time.Duration
	var attach string
	c := &cobra.Command{
		Use:   "audit --device BDF [--device BDF]... [--duration D] [--attach MODE]",
		Short: "Watch config-space accesses to guarded functions with eBPF and report who touched what",
		Long: `audit attaches eBPF probes to the kernel's user config-space access functions
(pci_user_{read,write}_config_*, reached from the sysfs config file, /proc/bus/pci and VFIO):
fentry/fexit (BPF trampolines) where the kernel allows, else kprobes (--attach chooses; the
mode in use is logged and is the "attach" key of every JSON line). It prints one line (or, with --json, one JSON object per line) for every access to a guarded
function: time, pid, comm, cgroup, read/write, offset, size, value written, path, and the
region touched (doe-mailbox, command, bar, msix, header, capability, extended).

It needs root (CAP_BPF and CAP_PERFMON), a kernel with BTF, and fentry or kprobes. Without them it says
which is missing and exits 4. It runs until interrupted or --duration passes. No policy, TPM
or daemon.

Exit codes: 0 stopped by an interrupt or --duration; 1 usage error (no --device, malformed BDF);
4 eBPF, fentry and kprobes (or the --attach mode) unavailable, or the function does not exist.`,
		Example: `  sudo vfio-gate audit --device 0000:3b:00.0
  sudo vfio-gate audit --json --device 0000:3b:00.0 --device 0000:3b:00.1 --duration 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(devices) == 0 {
				return usageErrorf("audit: name at least one --device BDF")
			}
			mode := audit.Mode(attach)
			switch attach {
			case "auto":
				mode = audit.ModeAuto
			case string(audit.ModeFentry), string(audit.ModeKprobe):
			default:
				return usageErrorf("audit: --attach %q: want auto, fentry or kprobe", attach)
			}
			layouts := map[string]audit.Layout{}
			for _, d := range devices {
				b, err := pci.ParseBDF(d)
				if err != nil {
					return usageErrorf("%v", err)
				}
				layouts[b.String()] = audit.LayoutOf(g.sysfsRoot, b)
			}
			m, err := audit.New(audit.Options{Logger: g.log, Mode: mode})
			if err != nil {
				return withCode(exitUnavailable, err)
			}
			defer m.Close()
			for d := range layouts {
				if err := m.Guard(d); err != nil {
					return err
				}
			}
			tagged, err := m.Attach()
			if err != nil {
				return withCode(exitUnavailable, err)
			}
			g.log.Info("audit attached", "mode", m.Mode(), "path_taggers", tagged)
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			err = m.Run(ctx, func(a *audit.Access) {
				a.Region = audit.Classify(a.Offset, a.Size, layouts[a.Device])
				if g.json { // one compact document per line
					if b, err := jsonDoc("audit-event", a); err == nil {
						_, _ = e.out.Write(append(b, '\n'))
					}
					return
				}
				rpt.WriteAuditText(e.out, a)
			})
			if n, lerr := m.Lost(); lerr == nil && n > 0 {
				fmt.Fprintf(e.errw, "vfio-gate: audit: %d events lost (ring buffer full)\n", n)
			}
			return err
		},
	}
	c.Flags().StringArrayVar(&devices, "device", nil, "function to guard (repeatable)")
	c.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until interrupted)")
	c.Flags().StringVar(&attach, "attach", "auto", "probe mode: auto (fentry, else kprobes), fentry or kprobe")
	return c
}
