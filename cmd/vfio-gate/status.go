package main

import (
	"fmt"
	"sort"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
)

var syscallSIGHUP = syscall.SIGHUP

func newStatusCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show what the vfio-gate daemon holds: domains, TDI states, sessions, last decisions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := daemon.NewClient(g.daemonSocket).Status(cmd.Context())
			if err != nil {
				return withCode(exitUnavailable, err)
			}
			if g.json {
				return writeJSON(e.out, st)
			}
			fmt.Fprintf(e.out, "daemon up since %s, policy %s\n", st.Started.Format("2006-01-02 15:04:05"), st.Policy)
			tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			doms := make([]string, 0, len(st.Domains))
			for d := range st.Domains {
				doms = append(doms, d)
			}
			sort.Strings(doms)
			if len(doms) > 0 {
				fmt.Fprintln(tw, "DOMAIN\tDEVICES")
				for _, d := range doms {
					fmt.Fprintf(tw, "%s\t%v\n", d, st.Domains[d])
				}
			}
			if len(st.TDIs) > 0 {
				fmt.Fprintln(tw, "\nTDI\tDOMAIN\tSTATE\tSESSION\tSINCE")
				for _, t := range st.TDIs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%#x\t%s\n", t.BDF, t.Domain, t.State, t.SessionID, t.Since.Format("15:04:05"))
				}
			}
			if len(st.Decisions) > 0 {
				fmt.Fprintln(tw, "\nDEVICE\tDECISION\tRULE\tREASONS")
				for _, d := range st.Decisions {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", d.BDF, d.Decision, d.Rule, d.Reasons)
				}
			}
			return tw.Flush()
		},
	}
}
