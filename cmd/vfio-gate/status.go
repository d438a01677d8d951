package main

import (
	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newStatusCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show what the vfio-gate daemon holds: domains, TDI states, sessions, last decisions",
		Long:    helpText("status.long"),
		Example: helpText("status.example"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := daemon.NewClient(g.daemonSocket).Status(cmd.Context())
			if err != nil {
				return withCode(exitUnavailable, err)
			}
			if g.json {
				return rpt.WriteJSON(e.out, "status", st)
			}
			return rpt.WriteStatus(e.out, st)
		},
	}
}
