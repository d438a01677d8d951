package spdm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// Signing contexts. DSP0274 1.3 §15 "Signature generation".
const (
	ctxChallengeAuth = "responder-challenge_auth signing"
	ctxMeasurements  = "responder-measurements signing"
	ctxKeyExchange   = "responder-key_exchange_rsp signing"
	ctxFinish        = "requester-finish signing"
)

const combinedPrefixLen = 100

// combinedPrefix is the 1.2+ signing prefix: "dmtf-spdm-v1.X.*" four times,
// zero bytes, then the context so the total is 100 bytes.
func combinedPrefix(v Version, context string) []byte {
	p := make([]byte, 0, combinedPrefixLen)
	s := fmt.Sprintf("dmtf-spdm-v%d.%d.*", uint8(v)>>4, uint8(v)&0xF)
	for range 4 {
		p = append(p, s...)
	}
	p = append(p, make([]byte, combinedPrefixLen-len(p)-len(context))...)
	return append(p, context...)
}

// hashOf hashes data with one HashAlgo bit.
func hashOf(h HashAlgo, data ...[]byte) ([]byte, error) {
	ch := h.CryptoHash()
	if ch == 0 || !ch.Available() {
		return nil, fmt.Errorf("spdm: hash %s not supported", h)
	}
	w := ch.New()
	for _, d := range data {
		w.Write(d)
	}
	return w.Sum(nil), nil
}

// signedMessage returns what the asymmetric primitive signs or verifies for
// transcript hash th: for 1.0/1.1 the digest th itself; for 1.2+ the digest
// Hash(prefix ‖ th), except for EdDSA which signs prefix ‖ th directly.
// The bool reports whether the result is a digest (true) or a message (EdDSA).
func signedMessage(v Version, asym AsymAlgo, h HashAlgo, context string, th []byte) ([]byte, bool, error) {
	if v < Version12 {
		return th, asym != AsymEd25519, nil
	}
	m := append(combinedPrefix(v, context), th...)
	if asym == AsymEd25519 {
		return m, false, nil
	}
	dg, err := hashOf(h, m)
	return dg, true, err
}

var errBadSignature = errors.New("signature does not verify")

// verifySignature checks sig over transcript hash th with the leaf key pub,
// per the negotiated version, asymmetric algorithm and hash. ECDSA signatures
// are r‖s big-endian fixed width; RSA-PSS uses salt length = hash length.
func verifySignature(v Version, asym AsymAlgo, h HashAlgo, context string, pub crypto.PublicKey, th, sig []byte) error {
	if asym.SignatureSize() == 0 || asym&AsymVerifiable == 0 || !oneBit(asym) {
		return fmt.Errorf("asymmetric algorithm %s not supported", asym)
	}
	if len(sig) != asym.SignatureSize() {
		return fmt.Errorf("signature is %d bytes, want %d", len(sig), asym.SignatureSize())
	}
	msg, isDigest, err := signedMessage(v, asym, h, context, th)
	if err != nil {
		return err
	}
	ch := h.CryptoHash()
	switch asym {
	case AsymECDSAP256, AsymECDSAP384, AsymECDSAP521:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curveFor(asym) {
			return fmt.Errorf("leaf key is %T, want ECDSA %s", pub, asym)
		}
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, msg, r, s) {
			return errBadSignature
		}
	case AsymRSASSA2048, AsymRSASSA3072, AsymRSASSA4096, AsymRSAPSS2048, AsymRSAPSS3072, AsymRSAPSS4096:
		k, ok := pub.(*rsa.PublicKey)
		if !ok || k.Size() != len(sig) {
			return fmt.Errorf("leaf key is %T, want RSA with %d-byte modulus", pub, len(sig))
		}
		if !isDigest {
			return errors.New("internal: RSA needs a digest")
		}
		var err error
		if asym == AsymRSAPSS2048 || asym == AsymRSAPSS3072 || asym == AsymRSAPSS4096 {
			err = rsa.VerifyPSS(k, ch, msg, sig, &rsa.PSSOptions{SaltLength: ch.Size(), Hash: ch})
		} else {
			err = rsa.VerifyPKCS1v15(k, ch, msg, sig)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errBadSignature, err)
		}
	case AsymEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("leaf key is %T, want Ed25519", pub)
		}
		if v < Version12 {
			return errors.New("Ed25519 before SPDM 1.2")
		}
		if !ed25519.Verify(k, msg, sig) {
			return errBadSignature
		}
	default:
		return fmt.Errorf("asymmetric algorithm %s not supported", asym)
	}
	return nil
}

func curveFor(a AsymAlgo) elliptic.Curve {
	switch a {
	case AsymECDSAP256:
		return elliptic.P256()
	case AsymECDSAP384:
		return elliptic.P384()
	case AsymECDSAP521:
		return elliptic.P521()
	}
	return nil
}

// signTranscript signs transcript hash th the way verifySignature checks it
// (for the responder and tests). ECDSA output is r‖s fixed width.
func signTranscript(rnd io.Reader, v Version, asym AsymAlgo, h HashAlgo, context string, key crypto.Signer, th []byte) ([]byte, error) {
	msg, isDigest, err := signedMessage(v, asym, h, context, th)
	if err != nil {
		return nil, err
	}
	ch := h.CryptoHash()
	switch asym {
	case AsymECDSAP256, AsymECDSAP384, AsymECDSAP521:
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("spdm: key is %T, want ECDSA", key)
		}
		r, s, err := ecdsa.Sign(rnd, k, msg)
		if err != nil {
			return nil, err
		}
		n := asym.SignatureSize() / 2
		out := make([]byte, 2*n)
		r.FillBytes(out[:n])
		s.FillBytes(out[n:])
		return out, nil
	case AsymRSAPSS2048, AsymRSAPSS3072, AsymRSAPSS4096:
		k, ok := key.(*rsa.PrivateKey)
		if !ok || !isDigest {
			return nil, fmt.Errorf("spdm: key is %T, want RSA", key)
		}
		return rsa.SignPSS(rnd, k, ch, msg, &rsa.PSSOptions{SaltLength: ch.Size(), Hash: ch})
	case AsymRSASSA2048, AsymRSASSA3072, AsymRSASSA4096:
		k, ok := key.(*rsa.PrivateKey)
		if !ok || !isDigest {
			return nil, fmt.Errorf("spdm: key is %T, want RSA", key)
		}
		return rsa.SignPKCS1v15(rnd, k, ch, msg)
	case AsymEd25519:
		k, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("spdm: key is %T, want Ed25519", key)
		}
		return ed25519.Sign(k, msg), nil
	}
	return nil, fmt.Errorf("spdm: asymmetric algorithm %s not supported", asym)
}
