package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/daemon"
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
			fmt.Fprintf(e.out, "daemon up since %s, policy %s\n", st.Started.Format("2006-01-02 15:04:05"), st.Policy)
			fmt.Fprintf(e.out, "TPM: %s\n", dash(st.TPM))
			if !st.Ready {
				fmt.Fprintf(e.out, "STARTING: %s (requests wait for it)\n", dash(st.Phase))
			}
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
			if len(st.Devices) > 0 {
				fmt.Fprintln(tw, "\nDEVICE\tDOMAIN\tRULE\tBOUND BY DAEMON\tDRIVER NOW\tORIGINAL DRIVER\tSINCE")
				for _, d := range st.Devices {
					rule := dash(d.Rule)
					if d.Decision == daemon.DecisionDeferred {
						rule = "(deferred: checked at start begin)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", d.BDF, d.Domain, rule, d.Bound, dash(d.Driver),
						dash(d.OriginalDriver), d.Since.Format("2006-01-02 15:04:05"))
				}
			}
			if len(st.TDIs) > 0 {
				fmt.Fprintln(tw, "\nTDI\tDOMAIN\tSTATE\tSESSION\tSINCE")
				for _, t := range st.TDIs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%#x\t%s\n", t.BDF, t.Domain, t.State, t.SessionID, t.Since.Format("15:04:05"))
				}
			}
			if len(st.Sessions) > 0 {
				fmt.Fprintln(tw, "\nSESSION\tDEVICE\tSINCE")
				for _, x := range st.Sessions {
					fmt.Fprintf(tw, "%#x\t%s\t%s\n", x.SessionID, x.BDF, x.Since.Format("15:04:05"))
				}
			}
			if len(st.Decisions) > 0 {
				fmt.Fprintln(tw, "\nDEVICE\tDECISION\tRULE\tTDI\tREASONS")
				for _, d := range st.Decisions {
					codes := make([]string, 0, len(d.Reasons))
					for _, r := range d.Reasons {
						codes = append(codes, r.Code)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.BDF, d.Decision, dash(d.Rule), dash(d.TDIState), dash(strings.Join(codes, ",")))
				}
			}
			if len(st.Released) > 0 {
				fmt.Fprintln(tw, "\nRELEASED\tDEVICES\tRECORDED\tTIME\tERRORS")
				for _, r := range st.Released {
					fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\n", r.Domain, r.BDFs, r.Recorded, r.Time.Format("2006-01-02 15:04:05"), dash(strings.Join(r.Errors, "; ")))
				}
			}
			if len(st.Reports) > 0 {
				fmt.Fprintln(tw, "\nREPORT\tDOMAIN\tDEVICE\tTIME\tMESSAGE")
				for _, r := range st.Reports {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, dash(r.Domain), dash(r.BDF), r.Time.Format("15:04:05"), r.Message)
				}
			}
			if st.TDISP != "" {
				fmt.Fprintf(tw, "\nTDISP: %s\n", st.TDISP)
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
