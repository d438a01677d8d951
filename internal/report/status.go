package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/vfio-gate/vfio-gate/daemon"
)

// WriteStatus writes the text form of the daemon's status (vfio-gate
// status): the daemon line, the TPM, then one table per non-empty part
// (domains, devices, TDIs, sessions, last decisions, releases, reports).
func WriteStatus(w io.Writer, st *daemon.Status) error {
	fmt.Fprintf(w, "daemon up since %s, policy %s\n", st.Started.Format("2006-01-02 15:04:05"), st.Policy)
	fmt.Fprintf(w, "TPM: %s\n", dash(st.TPM))
	if !st.Ready {
		fmt.Fprintf(w, "STARTING: %s (requests wait for it)\n", dash(st.Phase))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	statusHoldings(tw, st)
	statusHistory(tw, st)
	if st.TDISP != "" {
		fmt.Fprintf(tw, "\nTDISP: %s\n", st.TDISP)
	}
	return tw.Flush()
}

// statusHoldings writes what the daemon holds: domains, devices, TDIs and
// sessions.
func statusHoldings(tw io.Writer, st *daemon.Status) {
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
}

// statusHistory writes what the daemon did: last decisions, releases and
// reports.
func statusHistory(tw io.Writer, st *daemon.Status) {
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
}
