package main

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/vfio-gate/vfio-gate/internal/evexport"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func newEvidenceExportCmd(e *env, g *globals) *cobra.Command {
	var o evexport.Options
	cmd := &cobra.Command{
		Use:     "export --nonce HEX --out DIR",
		Short:   "Export the current boot's log, a TPM quote and the bundles, for verifiers with tpm2-tools",
		Long:    helpText("evidence-export.long"),
		Example: "  sudo vfio-gate evidence export --nonce $(openssl rand -hex 16) --out /tmp/export",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.LogDir, o.EvidenceDir = eventLogDir(g), evidenceDir(g)
			if err := o.Check(); err != nil {
				return err
			}
			t, err := tpm.Open(g.tpm)
			if err != nil {
				return err
			}
			defer t.Close()
			m, err := evexport.Write(cmd.Context(), t, o)
			var le *evexport.LogError
			if errors.As(err, &le) {
				return withCode(exitTPM, err)
			}
			if err != nil {
				return err
			}
			if g.json {
				return rpt.WriteJSON(e.out, "evidence-export", m)
			}
			return rpt.WriteExport(e.out, o.Out, m, o.PCR, o.Nonce)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Nonce, "nonce", "", "the verifier's nonce, hex (1 to 64 bytes); the quote's qualifyingData")
	fl.StringVar(&o.Out, "out", "", "directory to create and write the export into")
	fl.StringVar(&o.Boot, "boot", "current", "boot to export (only \"current\": the quote is of today's PCR)")
	fl.IntVar(&o.PCR, "pcr", tpm.DefaultPCR, "PCR the events are extended into")
	cmd.MarkFlagRequired("nonce")
	cmd.MarkFlagRequired("out")
	return cmd
}
