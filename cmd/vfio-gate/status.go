package main

import (
	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
)

func newStatusCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show what the vfio-gate daemon holds: domains, TDI states, sessions, last decisions",
		Long: `status asks the daemon (--daemon-socket) for what it holds: each domain's functions (rule,
bound by the daemon or by libvirt, current and original driver), the TDIs it locked and their
sessions, the last decisions with reason codes, the releases, and what it reported (hot-plugged
hostdevs, TDIs that left CONFIG_LOCKED/RUN, journal recovery). --json prints the API's status
object. Exit 4 when no daemon answers.`,
		Example: `  vfio-gate status
  vfio-gate status --json | jq '.domains'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := daemon.NewClient(g.daemonSocket).Status(cmd.Context())
			if err != nil {
				return withCode(exitUnavailable, err)
			}
			if g.json {
				return writeJSON(e.out, "status", st)
			}
			return rpt.WriteStatus(e.out, st)
		},
	}
}
