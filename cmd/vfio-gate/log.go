package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// eventLogName is the CEL-JSON event log inside --state-dir.
const eventLogName = "events.cel.jsonl"

func eventLogPath(g *globals) string { return filepath.Join(g.stateDir, eventLogName) }

func newLogCmd(e *env, g *globals) *cobra.Command {
	var pcr int
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show or verify the TPM event log (CEL-JSON) of gate decisions",
		Long: `The event log <state-dir>/` + eventLogName + ` holds one TCG Canonical Event Log
record (JSON) per measured event: SPDM measurement blocks, the trust anchor, the verdict,
releases and TDISP state changes. Each was extended into --pcr in every active bank.

"log show" needs read access to --state-dir only; "log verify" also needs the TPM (--tpm).`,
		Example: `  vfio-gate log show
  sudo vfio-gate log verify --tpm /dev/tpmrm0
  vfio-gate --json log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state`,
	}
	cmd.PersistentFlags().IntVar(&pcr, "pcr", tpm.DefaultPCR, "PCR the events are extended into")

	show := &cobra.Command{
		Use:   "show",
		Short: "Print the decoded event log (a table, or JSON with --json)",
		Long: `Decodes <state-dir>/events.cel.jsonl (no TPM needed): one line per record with its number,
the PCR (- for baseline records, which are logged but never extended), the event type and a
summary. --json prints {"events": [...]} with each record's recnum, pcr, content_type,
event_type, extended, digests, summary and decoded event.

Exit codes: 0 the log was read; 1 it cannot be read or a line does not decode.`,
		Example: "  vfio-gate log show --state-dir /var/lib/vfio-gate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := tpm.ReadLog(eventLogPath(g))
			if err != nil {
				return err
			}
			evs := make([]tpm.DecodedEvent, 0, len(l.Records))
			for _, r := range l.Records {
				evs = append(evs, tpm.Describe(r))
			}
			if g.json {
				return writeJSON(e.out, "log-show", map[string]any{"path": eventLogPath(g), "events": evs, "torn_last_line": l.Torn})
			}
			tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECNUM\tPCR\tTYPE\tEVENT")
			for _, d := range evs {
				pcrCol := fmt.Sprint(d.PCR)
				if !d.Extended {
					pcrCol = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", d.RecNum, pcrCol, d.EventType, d.Summary)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if l.Torn {
				fmt.Fprintf(e.out, "line %d: incomplete (torn append), not shown\n", l.TornLine)
			}
			return nil
		},
	}

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Replay the event log per bank and compare it with the TPM's PCR values",
		Long: `Replays this boot's records of the event log in every active PCR bank and compares the
result with the TPM (--tpm). Exit 0 when every bank matches and no record is altered or
missing; exit 5 on a mismatch (the first problem names the record that diverges, or says
that the TPM holds extends the log does not have) or when the TPM cannot be used; exit 1 when
the log cannot be read.`,
		Example: "  vfio-gate log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec := g.tpm
			if spec == simThrowaway {
				spec = "sim" // verifying records nothing: sim alone is fine here too
			}
			t, err := tpm.Open(spec)
			if err != nil {
				return err
			}
			defer t.Close()
			res, err := tpm.Verify(cmd.Context(), t, eventLogPath(g), pcr)
			if err != nil {
				return err
			}
			if g.json {
				if err := writeJSON(e.out, "log-verify", res); err != nil {
					return err
				}
			} else {
				printVerify(e, res, eventLogPath(g))
			}
			if !res.OK {
				err := fmt.Errorf("event log %s does not match PCR %d: %s", eventLogPath(g), pcr, res.Problems[0].Msg)
				if g.json {
					return quietCode(exitTPM, err)
				}
				return withCode(exitTPM, err)
			}
			return nil
		},
	}
	cmd.AddCommand(show, verify)
	return cmd
}

func printVerify(e *env, res *tpm.VerifyResult, path string) {
	var banks []string
	for _, b := range res.Banks {
		m := "match"
		if !b.Match {
			m = "MISMATCH"
		}
		banks = append(banks, b.Alg+" "+m)
	}
	status := "OK"
	if !res.OK {
		status = "FAILED"
	}
	fmt.Fprintf(e.out, "%s: PCR %d, %d records, %d replayed for this boot: %s (%s)\n",
		path, res.PCR, res.Records, res.Checked, status, strings.Join(banks, ", "))
	for _, p := range res.Problems {
		fmt.Fprintf(e.out, "problem  %-11s %s\n", p.Kind, p.Msg)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.out, "warning  %-11s %s\n", w.Kind, w.Msg)
	}
}
