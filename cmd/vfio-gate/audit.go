package main

import (
	"context"
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
				return usageErrorf("audit: --attach %q: want auto, fentry or kprobe", attach)
			}
			layouts, err := audit.Layouts(g.sysfsRoot, devices)
			if err != nil {
				return usageErrorf("%v", err)
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
