package spdm

import (
	"crypto/x509"
	"fmt"
	"time"
)

// Offline re-verification of an evidence bundle's signatures and chain
// (vfio-gate evidence verify, through attest.VerifyOffline).

// SignatureKind names what a signature covers, for offline re-verification.
type SignatureKind string

// Signature kinds.
const (
	SignatureChallengeAuth SignatureKind = "challenge_auth"
	SignatureMeasurements  SignatureKind = "measurements"
)

// VerifyTranscriptSignature re-checks, offline, a signature kept in an
// evidence bundle: transcript is ChallengeResult.Transcript (M1) or
// MeasurementsResult.Transcript (L1), chainBuffer the slot's
// CertChain.Buffer (its last certificate is the signing key). It applies the
// same rules as the requester (1.2+ combined prefix, ECDSA r‖s, PSS salt =
// hash length). It does not verify the chain itself.
func VerifyTranscriptSignature(kind SignatureKind, v Version, asym AsymAlgo, h HashAlgo, chainBuffer, transcript, sig []byte) error {
	var context string
	switch kind {
	case SignatureChallengeAuth:
		context = ctxChallengeAuth
	case SignatureMeasurements:
		context = ctxMeasurements
	default:
		return fmt.Errorf("spdm: unknown signature kind %q", kind)
	}
	if !v.valid() || !oneBit(asym) || !oneBit(h) {
		return fmt.Errorf("spdm: version %s, %s, %s is not one negotiated set", v, asym, h)
	}
	cc, err := parseChainBuffer(chainBuffer, h)
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(cc.Certs[len(cc.Certs)-1])
	if err != nil {
		return &VerificationError{Step: string(kind) + "-signature", Err: fmt.Errorf("leaf certificate: %w", err)}
	}
	th, err := hashOf(h, transcript)
	if err != nil {
		return err
	}
	if err := verifySignature(v, asym, h, context, leaf.PublicKey, th, sig); err != nil {
		return &VerificationError{Step: string(kind) + "-signature", Err: err}
	}
	return nil
}

// VerifyChainBuffer checks, offline, a slot's certificate chain buffer (as
// kept in an evidence bundle) against trust anchors at time now, with the
// same rules the requester applies to a chain it read.
func VerifyChainBuffer(slot uint8, buffer []byte, roots []*x509.Certificate, now time.Time, asym AsymAlgo, h HashAlgo) (*ChainReport, error) {
	if !oneBit(asym) || !oneBit(h) {
		return nil, fmt.Errorf("spdm: %s, %s is not one negotiated set", asym, h)
	}
	cc, err := parseChainBuffer(buffer, h)
	if err != nil {
		return nil, err
	}
	cc.Slot = slot
	rep := verifyChain(cc, roots, now, asym, h)
	if rep.Err != nil {
		return rep, &VerificationError{Step: "certificate-chain", Err: rep.Err}
	}
	return rep, nil
}
