package spdm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Chain error kinds; the same strings as attest.ChainError*.
const (
	ChainErrorUntrusted = "untrusted-root"
	ChainErrorBroken    = "broken-chain"
	ChainErrorExpired   = "expired"
	ChainErrorKeyUsage  = "key-usage"
	ChainErrorMalformed = "malformed"
)

// ChainError says why a certificate chain did not verify. Kind is one of
// the ChainError* constants.
type ChainError struct {
	Slot uint8
	Kind string
	Err  error
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("spdm: slot %d certificate chain: %s: %v", e.Slot, e.Kind, e.Err)
}
func (e *ChainError) Unwrap() error { return e.Err }

// OIDs. PCIe r6.1 §6.31.3 (CMA SAN), DSP0274 1.3 §"Leaf certificate" (DMTF).
var (
	oidSAN                = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidCMASAN             = asn1.ObjectIdentifier{2, 23, 147}
	oidDMTFDeviceInfo     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 1}
	oidDMTFResponderAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 3}
	oidDMTFRequesterAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 412, 274, 4}
	errNoAnchor           = errors.New("no trust anchor matches the chain's root")
	errCMASANMalformedFmt = "CMA SAN %q does not follow Vendor=%%04x:Device=%%04x:CC=%%06x:REV=%%02x[:SSVID=%%04x:SSID=%%04x][:%%016x]"
)

// CMASAN is the leaf's PCI-SIG CMA subjectAltName otherName (OID 2.23.147).
type CMASAN struct {
	Raw               string
	VendorID          uint16
	DeviceID          uint16
	Class             uint32
	Revision          uint8
	SubsystemVendorID *uint16
	SubsystemID       *uint16
	DSN               *uint64
}

// ChainReport is the outcome of VerifyChain for one slot. Certs, CMASAN and
// DeviceInfo are filled whenever the certificates parse, even when the chain
// does not verify.
type ChainReport struct {
	Slot     uint8
	Verified bool
	Err      *ChainError
	Certs    []*x509.Certificate // root side first, as sent
	Anchor   *x509.Certificate   // the trust anchor that verified it
	// AnchorSHA256 is SHA-256 of the anchor's DER (nil when unverified).
	AnchorSHA256 []byte
	CMASAN       *CMASAN
	CMASANError  error   // SAN present but malformed
	DeviceInfo   *string // DMTF otherName 1.3.6.1.4.1.412.274.1
	LeafKey      crypto.PublicKey
}

// VerifyChain verifies the chain of slot (read by Certificate) against
// Options.Roots at Options.Now. It sends nothing, and a failure is reported
// in the report and error without making the connection sticky-failed.
// Rules: anchors match by raw bytes or public key, never by name; the root
// may be outside the chain; each certificate must be signed by the previous
// one; crypto/x509 checks validity, CA flags and path constraints with
// ExtKeyUsageAny; the leaf must not be a CA, must have KeyUsage
// digitalSignature, a key of the negotiated algorithm, and must not carry the
// SPDM requester-auth EKU without responder-auth (TLS EKUs are ignored).
func (r *Requester) VerifyChain(slot uint8) (*ChainReport, error) {
	cc := r.chains[slot]
	if cc == nil {
		return nil, protoErr(RequestGetCertificate, "slot %d chain was not read", slot)
	}
	if r.neg == nil {
		return nil, protoErr(RequestGetCertificate, "called before Negotiate")
	}
	rep := verifyChain(cc, r.o.Roots, r.o.Now(), r.neg.BaseAsym, r.neg.BaseHash)
	if rep.Err != nil {
		return rep, &VerificationError{Step: "certificate-chain", Err: rep.Err}
	}
	return rep, nil
}

func verifyChain(cc *CertChain, roots []*x509.Certificate, now time.Time, asym AsymAlgo, h HashAlgo) *ChainReport {
	rep := &ChainReport{Slot: cc.Slot}
	fail := func(kind string, err error) *ChainReport {
		rep.Err = &ChainError{Slot: cc.Slot, Kind: kind, Err: err}
		return rep
	}
	for i, der := range cc.Certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fail(ChainErrorMalformed, fmt.Errorf("certificate %d: %w", i, err))
		}
		rep.Certs = append(rep.Certs, c)
	}
	if len(rep.Certs) == 0 {
		return fail(ChainErrorMalformed, errors.New("no certificates"))
	}
	leaf := rep.Certs[len(rep.Certs)-1]
	rep.LeafKey = leaf.PublicKey
	rep.CMASAN, rep.DeviceInfo, rep.CMASANError = leafNames(leaf)

	// Find the anchor: by bytes or key for an in-chain root, by signature for
	// a root outside the chain; its hash must be the buffer's RootHash.
	first := rep.Certs[0]
	rootInChain := selfSigned(first)
	var anchor *x509.Certificate
	for _, a := range roots {
		if rootInChain {
			if bytes.Equal(a.Raw, first.Raw) || samePublicKey(a.PublicKey, first.PublicKey) {
				anchor = a
			}
		} else if first.CheckSignatureFrom(a) == nil {
			anchor = a
		}
		if anchor != nil {
			if hh, err := hashOf(h, anchor.Raw); err == nil && (bytes.Equal(hh, cc.RootHash) || rootInChain) {
				break
			}
			anchor = nil
		}
	}
	if anchor == nil {
		return fail(ChainErrorUntrusted, errNoAnchor)
	}
	// Each certificate is signed by the previous one (SPDM order).
	for i := 1; i < len(rep.Certs); i++ {
		if err := rep.Certs[i].CheckSignatureFrom(rep.Certs[i-1]); err != nil {
			if errors.As(err, new(x509.ConstraintViolationError)) {
				return fail(ChainErrorKeyUsage, fmt.Errorf("certificate %d: issuer may not sign: %w", i, err))
			}
			return fail(ChainErrorBroken, fmt.Errorf("certificate %d is not signed by certificate %d: %w", i, i-1, err))
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(anchor)
	inter := x509.NewCertPool()
	start := 0
	if rootInChain {
		start = 1
	}
	for _, c := range rep.Certs[start : len(rep.Certs)-1] {
		inter.AddCert(c)
	}
	if len(rep.Certs) == 1 && rootInChain {
		return fail(ChainErrorBroken, errors.New("chain holds only the root"))
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) {
			switch inv.Reason {
			case x509.Expired:
				return fail(ChainErrorExpired, err)
			case x509.NotAuthorizedToSign, x509.IncompatibleUsage:
				return fail(ChainErrorKeyUsage, err)
			}
		}
		return fail(ChainErrorBroken, err)
	}
	// Validity of every certificate we were sent (x509 ignores unused ones).
	for i, c := range rep.Certs {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fail(ChainErrorExpired, fmt.Errorf("certificate %d valid %v–%v", i, c.NotBefore, c.NotAfter))
		}
	}
	if leaf.IsCA {
		return fail(ChainErrorKeyUsage, errors.New("leaf is a CA"))
	}
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fail(ChainErrorKeyUsage, errors.New("leaf KeyUsage lacks digitalSignature"))
	}
	var reqAuth, rspAuth bool
	for _, o := range leaf.UnknownExtKeyUsage {
		reqAuth = reqAuth || o.Equal(oidDMTFRequesterAuth)
		rspAuth = rspAuth || o.Equal(oidDMTFResponderAuth)
	}
	if reqAuth && !rspAuth {
		return fail(ChainErrorKeyUsage, errors.New("leaf EKU is SPDM requester-auth only"))
	}
	if asym != 0 && !keyMatches(asym, leaf.PublicKey) {
		return fail(ChainErrorKeyUsage, fmt.Errorf("leaf key %T does not match the negotiated %s", leaf.PublicKey, asym))
	}
	sum := sha256.Sum256(anchor.Raw)
	rep.Verified, rep.Anchor, rep.AnchorSHA256 = true, anchor, sum[:]
	return rep
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// keyMatches reports whether pub can verify signatures of asym.
func keyMatches(asym AsymAlgo, pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return curveFor(asym) == k.Curve
	case *rsa.PublicKey:
		return asym.SignatureSize() == k.Size() && asym&(AsymRSASSA2048|AsymRSAPSS2048|AsymRSASSA3072|AsymRSAPSS3072|AsymRSASSA4096|AsymRSAPSS4096) != 0
	case ed25519.PublicKey:
		return asym == AsymEd25519
	}
	return false
}

// leafNames decodes the otherName entries of the leaf's subjectAltName:
// the CMA SAN (2.23.147) and the DMTF device-info (…412.274.1).
func leafNames(c *x509.Certificate) (*CMASAN, *string, error) {
	var cma *CMASAN
	var info *string
	var cmaErr error
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) != 0 {
			return nil, nil, fmt.Errorf("subjectAltName does not parse: %v", err)
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
				continue
			}
			oid, val, err := parseOtherName(n.Bytes)
			if err != nil {
				cmaErr = err
				continue
			}
			switch {
			case oid.Equal(oidCMASAN):
				s, err := parseCMASAN(val)
				if err != nil {
					cmaErr = err
				} else {
					cma = s
				}
			case oid.Equal(oidDMTFDeviceInfo):
				v := val
				info = &v
			}
		}
	}
	return cma, info, cmaErr
}

// parseOtherName parses the inside of OtherName ::= SEQUENCE { type-id OID,
// value [0] EXPLICIT UTF8String } (the [0] IMPLICIT tag replaced the SEQUENCE tag).
func parseOtherName(b []byte) (asn1.ObjectIdentifier, string, error) {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(b, &oid)
	if err != nil {
		return nil, "", fmt.Errorf("otherName type-id: %w", err)
	}
	var wrap asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &wrap); err != nil || len(rest) != 0 || wrap.Class != asn1.ClassContextSpecific || wrap.Tag != 0 {
		return nil, "", fmt.Errorf("otherName value is not [0] EXPLICIT")
	}
	var s string
	if rest, err = asn1.UnmarshalWithParams(wrap.Bytes, &s, "utf8"); err != nil || len(rest) != 0 {
		return oid, "", fmt.Errorf("otherName %v value is not a UTF8String", oid)
	}
	return oid, s, nil
}

// parseCMASAN parses "Vendor=%04x:Device=%04x:CC=%06x:REV=%02x[:SSVID=%04x:SSID=%04x][:%016x]"
// (lower-case hex, exact widths). PCIe r6.1 §6.31.3.
func parseCMASAN(s string) (*CMASAN, error) {
	bad := fmt.Errorf(errCMASANMalformedFmt, s)
	f := strings.Split(s, ":")
	if len(f) < 4 || len(f) > 7 {
		return nil, bad
	}
	field := func(part, key string, width int) (uint64, bool) {
		v, ok := strings.CutPrefix(part, key)
		if !ok || len(v) != width || strings.ToLower(v) != v {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 16, 64)
		return n, err == nil
	}
	out := &CMASAN{Raw: s}
	ven, ok1 := field(f[0], "Vendor=", 4)
	dev, ok2 := field(f[1], "Device=", 4)
	cc, ok3 := field(f[2], "CC=", 6)
	rev, ok4 := field(f[3], "REV=", 2)
	if !(ok1 && ok2 && ok3 && ok4) {
		return nil, bad
	}
	out.VendorID, out.DeviceID, out.Class, out.Revision = uint16(ven), uint16(dev), uint32(cc), uint8(rev)
	rest := f[4:]
	if len(rest) >= 2 && strings.HasPrefix(rest[0], "SSVID=") {
		ssv, ok1 := field(rest[0], "SSVID=", 4)
		ssid, ok2 := field(rest[1], "SSID=", 4)
		if !ok1 || !ok2 {
			return nil, bad
		}
		a, b := uint16(ssv), uint16(ssid)
		out.SubsystemVendorID, out.SubsystemID = &a, &b
		rest = rest[2:]
	}
	if len(rest) == 1 {
		dsn, ok := field(rest[0], "", 16)
		if !ok {
			return nil, bad
		}
		out.DSN = &dsn
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return nil, bad
	}
	return out, nil
}

// FunctionID is what the host knows about a PCI function, for comparing
// with a CMA SAN. Nil optional fields are absent (type-1 header, no DSN
// capability).
type FunctionID struct {
	VendorID, DeviceID uint16
	Class              uint32
	Revision           uint8
	SubsystemVendorID  *uint16
	SubsystemID        *uint16
	DSN                *uint64
}

// CMASANFor builds the CMA SAN string a function with id must carry, as
// the Linux CMA code does (PCIe r6.1 §6.31.3): lower-case hex, SSVID/SSID
// only when known, the DSN last when present.
func CMASANFor(id FunctionID) string {
	s := fmt.Sprintf("Vendor=%04x:Device=%04x:CC=%06x:REV=%02x", id.VendorID, id.DeviceID, id.Class&0xFFFFFF, id.Revision)
	if id.SubsystemVendorID != nil && id.SubsystemID != nil {
		s += fmt.Sprintf(":SSVID=%04x:SSID=%04x", *id.SubsystemVendorID, *id.SubsystemID)
	}
	if id.DSN != nil {
		s += fmt.Sprintf(":%016x", *id.DSN)
	}
	return s
}

// Matches reports whether the SAN is exactly the one id must carry.
func (s *CMASAN) Matches(id FunctionID) bool { return s != nil && s.Raw == CMASANFor(id) }

// AsymForPublicKey is the set of asymmetric algorithms pub verifies (0 =
// none): what a requester holding a provisioned responder key should offer.
func AsymForPublicKey(pub crypto.PublicKey) AsymAlgo {
	var out AsymAlgo
	for a := AsymAlgo(1); a != 0 && a <= AsymEd448; a <<= 1 {
		if keyMatches(a, pub) {
			out |= a
		}
	}
	return out
}
