package emu

import (
	"fmt"
	"sort"
	"strings"
)

// Fault is one way the software device misbehaves. Faults combine; each has
// a stable name used by profiles and `vfio-gate emulate --profile`.
type Fault int

// Faults. The comment says what a correct requester must conclude.
const (
	// FaultBadSignature: CHALLENGE_AUTH and MEASUREMENTS signatures have a
	// flipped bit (signature verification fails).
	FaultBadSignature Fault = iota + 1
	// FaultWrongNonce: signatures cover another requester nonce, as a
	// replayed response would; 1.3 also echoes a wrong RequesterContext.
	FaultWrongNonce
	// FaultWrongCertChainHash: CHALLENGE_AUTH names (and signs) the hash of
	// another chain.
	FaultWrongCertChainHash
	// FaultWrongRoot: the chain is rooted at a CA with the published root's
	// name but another key (chain does not verify against the anchor).
	FaultWrongRoot
	// FaultExpiredLeaf: the leaf certificate expired yesterday.
	FaultExpiredLeaf
	// FaultSANMismatch: the leaf's CMA SAN names another Device ID.
	FaultSANMismatch
	// FaultNoSAN: the leaf has no CMA SAN (crypto-valid; policy decides).
	FaultNoSAN
	// FaultTruncated: CHALLENGE_AUTH and MEASUREMENTS lose their last 7 bytes.
	FaultTruncated
	// FaultOversize: DIGESTS carries 4 KiB of junk after the message.
	FaultOversize
	// FaultWrongResponseCode: GET_DIGESTS is answered with the CERTIFICATE code.
	FaultWrongResponseCode
	// FaultNotReadyForever: CHALLENGE and GET_MEASUREMENTS get
	// ResponseNotReady, and so does every RESPOND_IF_READY.
	FaultNotReadyForever
	// FaultBusyStorm: every request is answered ERROR Busy.
	FaultBusyStorm
	// FaultChangingMeasurements: the firmware measurement changes on every
	// GET_MEASUREMENTS (and the 1.2+ content-changed field says so).
	FaultChangingMeasurements
	// FaultNotReadyOnce: CHALLENGE and GET_MEASUREMENTS are served after one
	// RESPOND_IF_READY (legal: a slow device).
	FaultNotReadyOnce
	// FaultBusyOnce: every request is answered Busy once (legal).
	FaultBusyOnce
	// FaultBadVerifyData: ResponderVerifyData (KEY_EXCHANGE_RSP or
	// FINISH_RSP) is wrong: the session must not be established.
	FaultBadVerifyData
	// FaultBadTag: data-phase session records carry a corrupted AEAD tag:
	// the session dies (authentication failed).
	FaultBadTag
	// FaultWrongSessionID: data-phase responses come in records of another
	// session: the session dies (wrong session ID).
	FaultWrongSessionID
	// FaultKeyUpdateMismatch: KEY_UPDATE derives a wrong key on the device:
	// VerifyNewKey fails and the session dies.
	FaultKeyUpdateMismatch
)

var faultNames = map[Fault]string{
	FaultBadSignature: "bad-signature", FaultWrongNonce: "wrong-nonce", FaultWrongCertChainHash: "wrong-cert-chain-hash",
	FaultWrongRoot: "wrong-root", FaultExpiredLeaf: "expired-leaf", FaultSANMismatch: "san-mismatch",
	FaultNoSAN: "no-san", FaultTruncated: "truncated", FaultOversize: "oversize",
	FaultWrongResponseCode: "wrong-response-code", FaultNotReadyForever: "not-ready-forever",
	FaultBusyStorm: "busy-storm", FaultChangingMeasurements: "changing-measurements",
	FaultNotReadyOnce: "not-ready-once", FaultBusyOnce: "busy-once",
	FaultBadVerifyData: "bad-verify-data", FaultBadTag: "bad-tag", FaultWrongSessionID: "wrong-session-id",
	FaultKeyUpdateMismatch: "key-update-mismatch",
}

// Faults lists every fault in declaration order.
func Faults() []Fault {
	out := make([]Fault, 0, len(faultNames))
	for f := range faultNames {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (f Fault) String() string {
	if n, ok := faultNames[f]; ok {
		return n
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ParseFault parses a fault name.
func ParseFault(s string) (Fault, error) {
	for f, n := range faultNames {
		if n == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("emu: unknown fault %q", s)
}

// Profile is a named device personality: its measurements and faults.
type Profile struct {
	Name        string
	Description string
	Tampered    bool // firmware measurement differs from the good image
	Faults      []Fault
}

// Profiles returns every profile: "good", "tampered" and one per fault.
func Profiles() []Profile {
	ps := []Profile{
		{Name: "good", Description: "healthy device: valid chain with CMA SAN, good firmware measurement"},
		{Name: "tampered", Description: "valid chain and signatures, but the firmware measurement (index 2) differs", Tampered: true},
	}
	for _, f := range Faults() {
		ps = append(ps, Profile{Name: f.String(), Description: "good device with fault " + f.String(), Faults: []Fault{f}})
	}
	return ps
}

// ProfileNames lists the profile names, for help texts.
func ProfileNames() string {
	var names []string
	for _, p := range Profiles() {
		names = append(names, p.Name)
	}
	return strings.Join(names, "|")
}

// LookupProfile finds a profile by name.
func LookupProfile(name string) (Profile, error) {
	for _, p := range Profiles() {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("emu: unknown profile %q (want %s)", name, ProfileNames())
}
