package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/audit"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newAuditCmd(e *env, g *globals) *cobra.Command {
	var devices []string
	var duration time.Duration
	var attach string
	c := &cobra.Command{
		Use:     "audit --device BDF [--device BDF]... [--duration D] [--attach MODE]",
		Short:   "Watch config-space accesses to guarded functions with eBPF and report who touched what",
		Long:    helpText("audit.long"),
		Example: helpText("audit.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(devices) == 0 {
				return usageErrorf("audit: name at least one --device BDF")
			}
			mode, ok := audit.ParseMode(attach)
			if !ok {
				return usageErrorf("audit: --attach %q: want auto, fentry, kprobe-multi or kprobe", attach)
			}
			layouts, err := audit.Layouts(g.sysfsRoot, devices)
			if err != nil {
				return usageErrorf("%v", err)
			}
			lost, err := audit.Watch(cmd.Context(), audit.WatchOptions{Options: audit.Options{Logger: g.log, Mode: mode}, Layouts: layouts, Duration: duration},
				func(a *audit.Access) {
					if g.json { // one compact document per line
						if b, err := rpt.JSONDoc("audit-event", a); err == nil {
							_, _ = e.out.Write(append(b, '\n'))
						}
						return
					}
					rpt.WriteAuditText(e.out, a)
				})
			var ue *audit.UnavailableError
			if errors.As(err, &ue) {
				return withCode(exitUnavailable, err)
			}
			if lost > 0 {
				fmt.Fprintf(e.errw, "vfio-gate: audit: %d events lost (ring buffer full)\n", lost)
			}
			return err
		},
	}
	c.Flags().StringArrayVar(&devices, "device", nil, "function to guard (repeatable)")
	c.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until interrupted)")
	c.Flags().StringVar(&attach, "attach", "auto", "probe mode: auto (fentry, else kprobe-multi, else kprobes), fentry, kprobe-multi (kprobe.multi links) or kprobe")
	return c
}
