package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	rpt "github.com/vfio-gate/vfio-gate/internal/report"
	"github.com/vfio-gate/vfio-gate/policy"
)

// evidenceDirName is the bundle store inside --state-dir.
const evidenceDirName = "evidence"

func evidenceDir(g *globals) string { return filepath.Join(g.stateDir, evidenceDirName) }

func newEvidenceCmd(e *env, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "evidence",
		Short:   "Show, re-verify offline, or export the stored evidence of decisions",
		Long:    helpText("evidence.long", "evidenceDirName", evidenceDirName),
		Example: helpText("evidence.example"),
	}
	show := &cobra.Command{
		Use:     "show DIGEST|FILE",
		Short:   "Print a stored evidence bundle (JSON)",
		Long:    helpText("evidence-show.long"),
		Example: "  vfio-gate evidence show 3f1c…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := evstore.Load(evidenceDir(g), args[0])
			if err != nil {
				return err
			}
			return rpt.WriteJSON(e.out, "evidence-show", rpt.EvidenceShowOf(b))
		},
	}
	var anchors []string
	verify := &cobra.Command{
		Use:     "verify DIGEST|FILE",
		Short:   "Re-verify a bundle's signatures and transcripts offline; re-evaluate a policy",
		Long:    helpText("evidence-verify.long"),
		Example: helpText("evidence-verify.example"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := evstore.Load(evidenceDir(g), args[0])
			if err != nil {
				return err
			}
			roots, err := loadAnchors(anchors)
			if err != nil {
				return err
			}
			var p *policy.Policy
			if cmd.Flags().Changed("policy") {
				if p, err = policy.Load(g.policy, nil); err != nil {
					return err
				}
			}
			rep, verdict, err := gate.Reverify(b, roots, p, time.Now())
			if err != nil {
				return err
			}
			out := rpt.EvidenceVerifyOf(b, rep, verdict)
			if err := g.write(e, "evidence-verify", out, func(w io.Writer) { rpt.WriteEvidenceVerify(w, out, g.policy) }); err != nil {
				return err
			}
			switch {
			case !rep.OK:
				return g.fail(exitAttestation, fmt.Errorf("bundle %s does not re-verify", b.Digest))
			case verdict != nil && !verdict.Allow:
				return g.fail(exitDenied, fmt.Errorf("policy %s denies the evidence of bundle %s", g.policy, b.Digest))
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&anchors, "trust-anchor", nil, "trust anchor certificate (PEM, may hold several, or DER); repeatable")
	cmd.AddCommand(show, verify, newEvidenceExportCmd(e, g))
	return cmd
}
