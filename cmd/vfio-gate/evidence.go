package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/vfio-gate/vfio-gate/attest"
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
			b, err := loadBundle(g, args[0])
			if err != nil {
				return err
			}
			return writeJSON(e.out, "evidence-show", rpt.EvidenceShowOf(b))
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
			b, err := loadBundle(g, args[0])
			if err != nil {
				return err
			}
			var ev attest.Evidence
			if err := json.Unmarshal(b.Evidence, &ev); err != nil {
				return fmt.Errorf("bundle %s: evidence: %w", b.Digest, err)
			}
			roots, err := loadAnchors(anchors)
			if err != nil {
				return err
			}
			now := time.Now()
			rep, checked := attest.VerifyOffline(&ev, roots, now)
			var verdict *policy.Verdict
			if cmd.Flags().Changed("policy") {
				p, err := policy.Load(g.policy, nil)
				if err != nil {
					return err
				}
				v := p.Evaluate(checked, policy.Input{Now: now, Confidential: b.Decision.Confidential})
				verdict = &v
			}
			out := rpt.EvidenceVerifyOf(b, rep, verdict)
			if g.json {
				if err := writeJSON(e.out, "evidence-verify", out); err != nil {
					return err
				}
			} else {
				rpt.WriteEvidenceVerify(e.out, out, g.policy)
			}
			code := 0
			var err2 error
			switch {
			case !rep.OK:
				code, err2 = exitAttestation, fmt.Errorf("bundle %s does not re-verify", b.Digest)
			case verdict != nil && !verdict.Allow:
				code, err2 = exitDenied, fmt.Errorf("policy %s denies the evidence of bundle %s", g.policy, b.Digest)
			}
			if err2 != nil {
				if g.json {
					return quietCode(code, err2)
				}
				return withCode(code, err2)
			}
			return nil
		},
	}
	verify.Flags().StringArrayVar(&anchors, "trust-anchor", nil, "trust anchor certificate (PEM, may hold several, or DER); repeatable")
	cmd.AddCommand(show, verify, newEvidenceExportCmd(e, g))
	return cmd
}

// loadBundle reads a bundle by digest from the store, or from a file.
func loadBundle(g *globals, arg string) (*evstore.Bundle, error) {
	return evstore.Load(evidenceDir(g), arg)
}
