package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/internal/evexport"
	"github.com/vfio-gate/vfio-gate/policy"
)

// EvidenceShow is the body of the "evidence-show" document: a stored
// bundle with its evidence as stored.
type EvidenceShow struct {
	BundleSchema string           `json:"bundle_schema"`
	Decision     evstore.Decision `json:"decision"`
	Digest       string           `json:"digest"`
	Evidence     json.RawMessage  `json:"evidence"`
}

// EvidenceShowOf is the document of b.
func EvidenceShowOf(b *evstore.Bundle) EvidenceShow {
	return EvidenceShow{BundleSchema: b.Schema, Decision: b.Decision, Digest: b.Digest, Evidence: b.Evidence}
}

// EvidenceVerify is the body of the "evidence-verify" document: the
// offline re-checks of a bundle and, when a policy was given, its verdict.
type EvidenceVerify struct {
	Checks        []attest.OfflineCheck `json:"checks"`
	Decision      evstore.Decision      `json:"decision"`
	Digest        string                `json:"digest"`
	OK            bool                  `json:"ok"`
	PolicyVerdict *policy.Verdict       `json:"policy_verdict,omitempty"`
}

// EvidenceVerifyOf is the document of b's re-checks rep and the policy's
// verdict v (nil: no policy given).
func EvidenceVerifyOf(b *evstore.Bundle, rep *attest.OfflineReport, v *policy.Verdict) EvidenceVerify {
	return EvidenceVerify{Checks: rep.Checks, Decision: b.Decision, Digest: b.Digest, OK: rep.OK, PolicyVerdict: v}
}

// WriteEvidenceVerify writes the text form of v: the bundle's recorded
// decision, one line per check, then the verdict of the policy at
// policyPath with its reasons.
func WriteEvidenceVerify(w io.Writer, v EvidenceVerify, policyPath string) {
	fmt.Fprintf(w, "bundle %s: %s %s (recorded %s)\n", v.Digest, v.Decision.BDF, strings.ToUpper(v.Decision.Verdict), v.Decision.Time.Format(time.RFC3339))
	for _, c := range v.Checks {
		st := "ok  "
		if !c.OK {
			st = "FAIL"
		}
		fmt.Fprintf(w, "  %s %-22s %s\n", st, c.Name, c.Detail)
	}
	if v.PolicyVerdict != nil {
		fmt.Fprintf(w, "policy %s: %s\n", policyPath, v.PolicyVerdict.Decision)
		for _, r := range v.PolicyVerdict.Reasons {
			fmt.Fprintf(w, "  %s: %s\n", r.Code, r.Message)
		}
	}
}

// WriteExport writes the one-line text form of an evidence export into
// dir: the boot, its events, the quoted PCR and nonce, the bundles.
func WriteExport(w io.Writer, dir string, m *evexport.Manifest, pcr int, nonceHex string) error {
	_, err := fmt.Fprintf(w, "%s: boot %d, %d events, PCR %d quoted with nonce %s; %d bundles (%d missing)\n",
		dir, m.Boot, m.Events, pcr, nonceHex, len(m.Bundles), len(m.MissingBundles))
	return err
}
