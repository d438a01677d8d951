package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

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
			boots, err := tpm.SelectBoots(eventLogDir(g), lf.boot, lf.all)
			if err != nil {
				return err
			}
			shown := []rpt.LogBoot{}
			table := rpt.NewLogTable(e.out)
			for _, b := range boots {
				l, err := tpm.ReadBoot(eventLogDir(g), b.Seq)
				if err != nil {
					return err
				}
				lb := rpt.LogBootOf(b, l)
				shown = append(shown, lb)
				if !g.json {
					table.Boot(lb)
				}
			}
			if g.json {
				return writeJSON(e.out, "log-show", map[string]any{"dir": eventLogDir(g), "boots": shown})
			}
			return table.Flush(eventLogDir(g), len(boots) == 0)
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
			spec := g.tpm
			if spec == simThrowaway {
				spec = "sim" // verifying records nothing: sim alone is fine here too
			}
			t, err := tpm.Open(spec)
			if err != nil {
				return err
			}
			defer t.Close()
			seqs := []int{lf.boot}
			if lf.all {
				boots, err := tpm.ListBoots(eventLogDir(g))
				if err != nil {
					return err
				}
				seqs = nil
				for _, b := range boots {
					seqs = append(seqs, b.Seq)
				}
				if len(seqs) == 0 {
					seqs = []int{0}
				}
			}
			var results []*tpm.VerifyResult
			var failed error
			for _, seq := range seqs {
				res, err := tpm.VerifyBoot(cmd.Context(), t, eventLogDir(g), seq, lf.pcr)
				if err != nil {
					return err
				}
				results = append(results, res)
				if !g.json {
					printVerify(e, res, eventLogDir(g))
				}
				if !res.OK && failed == nil {
					failed = fmt.Errorf("event log %s (boot %d) does not match PCR %d: %s", eventLogDir(g), res.Boot, lf.pcr, res.Problems[0].Msg)
				}
			}
			if g.json {
				var err error
				if lf.all {
					err = writeJSON(e.out, "log-verify-all", map[string]any{"boots": results})
				} else {
					err = writeJSON(e.out, "log-verify", results[0])
				}
				if err != nil {
					return err
				}
			}
			if failed != nil {
				if g.json {
					return quietCode(exitTPM, failed)
				}
				return withCode(exitTPM, failed)
			}
			return nil
		},
	}
}

// printVerify is rpt.WriteVerify on e.out (demo.go).
func printVerify(e *env, res *tpm.VerifyResult, path string) { rpt.WriteVerify(e.out, res, path) }
