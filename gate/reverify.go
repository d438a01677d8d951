package gate

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate/evstore"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Reverify re-checks a stored decision offline: the signatures and
// transcripts of b's evidence against roots at now (attest.VerifyOffline)
// and, when p is not nil, p's verdict on the evidence as re-established
// (the decision's confidentiality stands). The verdict is nil without p;
// an error means b's evidence does not decode.
func Reverify(b *evstore.Bundle, roots []*x509.Certificate, p *policy.Policy, now time.Time) (*attest.OfflineReport, *policy.Verdict, error) {
	var ev attest.Evidence
	if err := json.Unmarshal(b.Evidence, &ev); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: evidence: %w", b.Digest, err)
	}
	rep, checked := attest.VerifyOffline(&ev, roots, now)
	if p == nil {
		return rep, nil, nil
	}
	v := p.Evaluate(checked, policy.Input{Now: now, Confidential: b.Decision.Confidential})
	return rep, &v, nil
}
