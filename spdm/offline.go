package spdm

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

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

var capNames = []struct {
	mask, val uint32
	name      string
}{
	{CapCache, CapCache, "cache"}, {CapCert, CapCert, "cert"}, {CapChal, CapChal, "chal"},
	{CapMeasMask, CapMeasNoSig, "meas-nosig"}, {CapMeasMask, CapMeasSig, "meas-sig"}, {CapMeasFresh, CapMeasFresh, "meas-fresh"},
	{CapEncrypt, CapEncrypt, "encrypt"}, {CapMAC, CapMAC, "mac"}, {CapMutAuth, CapMutAuth, "mut-auth"},
	{CapKeyEx, CapKeyEx, "key-ex"}, {CapPSKMask, 1 << 10, "psk"}, {CapPSKMask, 2 << 10, "psk-context"},
	{CapEncap, CapEncap, "encap"}, {CapHBeat, CapHBeat, "hbeat"}, {CapKeyUpd, CapKeyUpd, "key-upd"},
	{CapHandshakeInClear, CapHandshakeInClear, "handshake-in-the-clear"}, {CapPubKeyID, CapPubKeyID, "pub-key-id"},
	{CapChunk, CapChunk, "chunk"}, {CapAliasCert, CapAliasCert, "alias-cert"}, {1 << 19, 1 << 19, "set-cert"},
	{1 << 20, 1 << 20, "csr"}, {1 << 21, 1 << 21, "cert-install-reset"}, {CapEPInfoMask, 1 << 22, "ep-info-nosig"},
	{CapEPInfoMask, 2 << 22, "ep-info-sig"}, {1 << 24, 1 << 24, "mel"}, {1 << 25, 1 << 25, "event"},
	{CapMultiKeyMask, 1 << 26, "multi-key-only"}, {CapMultiKeyMask, 2 << 26, "multi-key-negotiated"},
	{1 << 28, 1 << 28, "get-key-pair-info"}, {1 << 29, 1 << 29, "set-key-pair-info"},
}

// CapabilityNames lists responder capability flags as names ("cert",
// "chal", "meas-sig", ...), for evidence and people.
func CapabilityNames(flags uint32) []string {
	var out []string
	for _, c := range capNames {
		if flags&c.mask == c.val {
			out = append(out, c.name)
		}
	}
	return out
}

// String lists the capability names joined by "|".
func capString(flags uint32) string { return strings.Join(CapabilityNames(flags), "|") }

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
