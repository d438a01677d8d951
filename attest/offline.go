package attest

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/vfio-gate/vfio-gate/spdm"
)

// OfflineCheck is one re-check of stored evidence.
type OfflineCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// OfflineReport is the result of VerifyOffline.
type OfflineReport struct {
	OK     bool           `json:"ok"`
	Checks []OfflineCheck `json:"checks"`
}

func (r *OfflineReport) add(name string, err error, okDetail string) bool {
	c := OfflineCheck{Name: name, OK: err == nil, Detail: okDetail}
	if err != nil {
		c.Detail = err.Error()
	}
	r.Checks = append(r.Checks, c)
	return err == nil
}

// VerifyOffline re-checks evidence kept in a bundle, with no device: the
// certificate chain buffer against roots (skipped, and said so, when roots
// is empty), the CHALLENGE_AUTH and MEASUREMENTS signatures over their
// transcripts with the chain's leaf key (spdm.VerifyTranscriptSignature,
// the requester's own rules), that each requester nonce is in its
// transcript, and that every measurement block's value is in the signed
// measurement transcript. Evidence that claims a verified signature the
// bundle cannot back is a failure. OK is true when every check ran passed.
//
// It also returns a copy of ev whose verification claims are only those
// re-established here, for re-evaluating a policy.
func VerifyOffline(ev *Evidence, roots []*x509.Certificate, now time.Time) (*OfflineReport, *Evidence) {
	rep := &OfflineReport{Checks: []OfflineCheck{}}
	out := *ev
	out.ChallengeVerified, out.MeasurementsSignatureVerified = false, false
	out.Chains = append([]ChainState(nil), ev.Chains...)
	if ev.Version == "" {
		rep.add("spdm", fmt.Errorf("SPDM was never negotiated: nothing signed to re-check"), "")
		return finishOffline(rep), &out
	}
	v, verr := ParseVersion(ev.Version)
	asym, aerr := ParseAsym(ev.Algorithms.BaseAsym)
	h, herr := ParseHash(ev.Algorithms.BaseHash)
	if !rep.add("algorithms", firstErr(verr, aerr, herr), fmt.Sprintf("SPDM %s, %s, %s", ev.Version, ev.Algorithms.BaseAsym, ev.Algorithms.BaseHash)) {
		return finishOffline(rep), &out
	}
	b := ev.Bundle
	if len(b.CertChainBuffer) == 0 {
		rep.add("certificate-chain", fmt.Errorf("the bundle has no certificate chain buffer"), "")
		return finishOffline(rep), &out
	}
	chainOK := false
	if len(roots) == 0 {
		rep.Checks = append(rep.Checks, OfflineCheck{Name: "certificate-chain", OK: true,
			Detail: "not checked: no trust anchor given (--trust-anchor); signatures are checked against the chain's own leaf"})
	} else {
		cr, err := spdm.VerifyChainBuffer(b.Slot, b.CertChainBuffer, roots, now, asym, h)
		chainOK = rep.add("certificate-chain", err, fmt.Sprintf("slot %d chain verifies to a given trust anchor", b.Slot))
		for i := range out.Chains {
			if out.Chains[i].Slot == b.Slot {
				out.Chains[i].Verified = chainOK
				if cr != nil && cr.Err != nil {
					out.Chains[i].Error, out.Chains[i].ErrorKind = cr.Err.Error(), cr.Err.Kind
				}
			}
		}
	}
	_ = chainOK
	signed := func(name string, kind spdm.SignatureKind, transcript, sig, nonce []byte, claimed bool) bool {
		if len(transcript) == 0 || len(sig) == 0 {
			if claimed {
				rep.add(name, fmt.Errorf("the evidence claims a verified signature but the bundle has no transcript or signature"), "")
			}
			return false
		}
		err := spdm.VerifyTranscriptSignature(kind, v, asym, h, b.CertChainBuffer, transcript, sig)
		if err == nil && len(nonce) > 0 && !bytes.Contains(transcript, nonce) {
			err = fmt.Errorf("the requester nonce is not in the signed transcript")
		}
		return rep.add(name, err, fmt.Sprintf("signature over a %d-byte transcript verifies with the leaf key", len(transcript)))
	}
	out.ChallengeVerified = signed("challenge-signature", spdm.SignatureChallengeAuth, b.ChallengeTranscript,
		b.ChallengeSignature, b.ChallengeNonce, ev.ChallengeVerified)
	out.MeasurementsSignatureVerified = signed("measurements-signature", spdm.SignatureMeasurements, b.MeasurementTranscript,
		b.MeasurementSignature, b.MeasurementNonce, ev.MeasurementsSignatureVerified)
	if out.MeasurementsSignatureVerified {
		var missing []uint8
		for _, m := range ev.Measurements {
			if !bytes.Contains(b.MeasurementTranscript, m.Value) {
				missing = append(missing, m.Index)
			}
		}
		var err error
		if len(missing) > 0 {
			err = fmt.Errorf("measurement blocks %v are not in the signed transcript", missing)
			out.MeasurementsSignatureVerified = false
		}
		rep.add("measurement-blocks", err, fmt.Sprintf("%d blocks are in the signed transcript", len(ev.Measurements)))
	}
	return finishOffline(rep), &out
}

func finishOffline(r *OfflineReport) *OfflineReport {
	r.OK = len(r.Checks) > 0
	for _, c := range r.Checks {
		r.OK = r.OK && c.OK
	}
	return r
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
