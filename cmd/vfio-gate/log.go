package main

import (
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vfio-gate/vfio-gate/gate"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// eventLogName is the event log directory inside --state-dir: one
// sub-directory per TPM boot, CEL-JSON segments in each (docs/evidence.md).
const eventLogName = "events"

func eventLogDir(g *globals) string { return filepath.Join(g.stateDir, eventLogName) }

// logFlags are the persistent flags of `vfio-gate log`.
type logFlags struct {
	pcr, boot int
	all       bool
}

func newLogCmd(e *env, g *globals) *cobra.Command {
	lf := &logFlags{}
	cmd := &cobra.Command{
		Use:     "log",
		Short:   "Show or verify the TPM event log (CEL-JSON) of gate decisions",
		Long:    helpText("log.long", "eventLogName", eventLogName),
		Example: helpText("log.example"),
	}
	cmd.PersistentFlags().IntVar(&lf.pcr, "pcr", tpm.DefaultPCR, "PCR the events are extended into")
	cmd.PersistentFlags().IntVar(&lf.boot, "boot", 0, "the boot to read (its number, as log show --all lists them); 0: the current boot")
	cmd.PersistentFlags().BoolVar(&lf.all, "all", false, "every logged boot, oldest first")
	cmd.MarkFlagsMutuallyExclusive("boot", "all")

	cmd.AddCommand(newLogShowCmd(e, g, lf), newLogVerifyCmd(e, g, lf))
	return cmd
}

func newLogShowCmd(e *env, g *globals, lf *logFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "show",
		Short:   "Print the decoded event log (a table, or JSON with --json)",
		Long:    helpText("log-show.long"),
		Example: "  vfio-gate log show --state-dir /var/lib/vfio-gate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var table *rpt.LogTable
			if !g.json {
				table = rpt.NewLogTable(e.out)
			}
			doc, err := rpt.ReadLogShow(eventLogDir(g), lf.boot, lf.all, table)
			if err != nil {
				return err
			}
			if g.json {
				return rpt.WriteJSON(e.out, "log-show", doc)
			}
			return table.Flush(eventLogDir(g), len(doc.Boots) == 0)
		},
	}
}

func newLogVerifyCmd(e *env, g *globals, lf *logFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "verify",
		Short:   "Replay the event log per bank and compare it with the TPM's PCR values",
		Long:    helpText("log-verify.long"),
		Example: "  vfio-gate log verify --tpm tcp:127.0.0.1:2321 --state-dir /tmp/demo-state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := tpm.Open(gate.ReadingTPM(g.tpm)) // verifying records nothing: sim alone is fine here too
			if err != nil {
				return err
			}
			defer t.Close()
			var each func(*tpm.VerifyResult)
			if !g.json {
				each = func(res *tpm.VerifyResult) { printVerify(e, res, eventLogDir(g)) }
			}
			results, err := tpm.VerifyBoots(cmd.Context(), t, eventLogDir(g), lf.boot, lf.all, lf.pcr, each)
			if err != nil {
				return err
			}
			switch {
			case g.json && lf.all:
				err = rpt.WriteJSON(e.out, "log-verify-all", map[string]any{"boots": results})
			case g.json:
				err = rpt.WriteJSON(e.out, "log-verify", results[0])
			}
			if err != nil {
				return err
			}
			if err := tpm.Mismatch(eventLogDir(g), results); err != nil {
				return g.fail(exitTPM, err)
			}
			return nil
		},
	}
}

// printVerify is rpt.WriteVerify on e.out (demo.go).
func printVerify(e *env, res *tpm.VerifyResult, path string) { rpt.WriteVerify(e.out, res, path) }
