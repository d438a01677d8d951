package policy

import (
	"fmt"
	"slices"

	"github.com/vfio-gate/vfio-gate/attest"
)

// Code is a stable reason code. Codes never change meaning; new ones may be added.
type Code string

// Reason codes. docs/policy.md lists each with its message.
const (
	CodeNoCMA               Code = "no-cma"
	CodeNoRule              Code = "no-rule"
	CodeChainUntrusted      Code = "chain-untrusted"
	CodeChainExpired        Code = "chain-expired"
	CodeChainBroken         Code = "chain-broken"
	CodeRevoked             Code = "revoked"
	CodeCRLExpired          Code = "crl-expired"
	CodeCRLInvalid          Code = "crl-invalid"
	CodeSANMismatch         Code = "san-mismatch"
	CodeSignatureInvalid    Code = "signature-invalid"
	CodeMeasurementMismatch Code = "measurement-mismatch"
	CodeMeasurementMissing  Code = "measurement-missing"
	CodeSVNTooLow           Code = "svn-too-low"
	CodeDebugMode           Code = "debug-mode"
	CodeVersionTooLow       Code = "version-too-low"
	CodeAlgorithmNotAllowed Code = "algorithm-not-allowed"
	CodeSessionRequired     Code = "session-required"
	CodeTDISPNotLocked      Code = "tdisp-not-locked"
	CodeIOMMUGroupUnsafe    Code = "iommu-group-unsafe"
	CodeLockdown            Code = "lockdown"
	CodePermission          Code = "permission"
	CodeMailboxBusy         Code = "mailbox-busy"
	CodeMailboxOwned        Code = "mailbox-owned"
	CodeMailboxTampered     Code = "mailbox-tampered"
	CodeTimeout             Code = "timeout"
	CodeDeviceRemoved       Code = "device-removed"
	CodeTransport           Code = "transport"
	CodeProtocol            Code = "protocol"
)

// Codes that describe what happened around the evaluation rather than the
// evidence; gate adds them.
const (
	CodeNoDevice Code = "no-device" // the BDF names no PCI function
	CodeLock     Code = "lock"      // the per-function lock could not be taken
	CodeTPM      Code = "tpm"       // the decision could not be recorded in the TPM
)

// Class is what a reason code says about the outcome; cmd turns it into an
// exit code (the CLI contract: 2 attestation failed, 3 policy denied, 4
// device or transport unavailable, 5 TPM).
type Class uint8

// Classes.
const (
	// ClassDenied: the evidence was gathered and the policy refused it (exit 3).
	ClassDenied Class = iota + 1
	// ClassAttestation: the device did not prove what it is: a signature,
	// nonce, certificate chain or protocol failure (exit 2).
	ClassAttestation
	// ClassUnavailable: the device, its transport or the host's access to it
	// could not be used; nothing was learned about the device (exit 4).
	ClassUnavailable
	// ClassTPM: the decision could not be recorded (exit 5).
	ClassTPM
)

// Worse is the class of a and b that decides the outcome when a run has
// both: a TPM failure, then a policy deny, then an attestation failure, then
// unavailability; the zero Class (nothing failed) loses to every class. An
// unknown class ranks as a policy deny (fail closed).
func Worse(a, b Class) Class {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

func (c Class) rank() int {
	switch c {
	case 0:
		return 0
	case ClassUnavailable:
		return 1
	case ClassAttestation:
		return 2
	case ClassTPM:
		return 4
	}
	return 3 // ClassDenied, unknown
}

// codeRow is one reason code: its class, the attestation failure kinds that
// map to it, whether those kinds mean the host could not look (the device is
// then merely unattested), and the "what to do" sentence.
type codeRow struct {
	code     Code
	class    Class
	kinds    []attest.Kind
	hostSide bool
	advice   string
}

// codeTable is the one table from failure kind to reason code to class.
// attest.FailChain maps to chain-broken unless the chain's ErrorKind says
// untrusted or expired (chainCode).
var codeTable = []codeRow{
	{CodeNoCMA, ClassDenied, []attest.Kind{attest.FailNoDOE, attest.FailNoCMA}, true, "the device offers no CMA/SPDM mailbox, so it cannot be attested: use an attestable device, or pass it only to non-confidential VMs under defaults.non_confidential: allow-unattested"},
	{CodeNoRule, ClassDenied, nil, false, "no policy rule matches this device: add a rule for it (vfio-gate policy capture prints one)"},
	{CodeChainUntrusted, ClassAttestation, nil, false, "the certificate chain does not lead to a trust anchor of the matching rule: add the vendor's root to spdm.trust_anchors if you trust it"},
	{CodeChainExpired, ClassAttestation, nil, false, "a certificate in the device's chain has expired: ask the vendor for re-provisioned certificates or a firmware update"},
	{CodeChainBroken, ClassAttestation, []attest.Kind{attest.FailChain}, false, "the device's certificate chain is malformed or misuses keys: do not use this device until the vendor explains its certificates"},
	{CodeRevoked, ClassDenied, nil, false, "a certificate in the device's chain is revoked by a configured CRL: take the device out of service"},
	{CodeCRLExpired, ClassDenied, nil, false, "a configured CRL is past its nextUpdate (or not yet valid): install a current CRL from the issuer"},
	{CodeCRLInvalid, ClassDenied, nil, false, "a configured CRL's signature does not verify against its issuer in the chain: replace the CRL file with the issuer's genuine CRL"},
	{CodeSANMismatch, ClassDenied, nil, false, "the leaf certificate's CMA subjectAltName does not name this device: the device may be impersonating another, do not use it"},
	{CodeSignatureInvalid, ClassAttestation, []attest.Kind{attest.FailSignature, attest.FailNonce}, false, "the device did not prove possession of its certificate key with a valid, fresh signature: do not use it, and report it to the vendor"},
	{CodeMeasurementMismatch, ClassDenied, nil, false, "a firmware measurement matches none of the reference values: update measurements.reference if the firmware was updated on purpose, otherwise treat the device as tampered"},
	{CodeMeasurementMissing, ClassDenied, nil, false, "the device did not report a measurement the rule requires: check the rule's indices, or update the device firmware"},
	{CodeSVNTooLow, ClassDenied, nil, false, "the firmware security version is below measurements.min_svn: update the device firmware"},
	{CodeDebugMode, ClassDenied, nil, false, "the device reports that debug mode is or was active: reset it to normal operation before passing it to a VM"},
	{CodeVersionTooLow, ClassDenied, nil, false, "the negotiated SPDM version is below spdm.min_version: update the device firmware or lower the floor knowingly"},
	{CodeAlgorithmNotAllowed, ClassDenied, nil, false, "the negotiated algorithm is not in the rule's allow-list: update the device firmware or extend spdm.algorithms knowingly"},
	{CodeSessionRequired, ClassDenied, []attest.Kind{attest.FailSession}, false, "the rule requires an SPDM secure session and none was established: use a device and firmware with KEY_EXCHANGE support"},
	{CodeTDISPNotLocked, ClassDenied, []attest.Kind{attest.FailTDISP}, false, "the rule requires the TDISP interface to be locked and it is not: assign the function to a confidential domain through the vfio-gate daemon (the libvirt hook), which locks it in the attested session before deciding, or lock it via the platform TSM"},
	{CodeIOMMUGroupUnsafe, ClassDenied, nil, false, "another function in the IOMMU group is not allowed and not exempt: bind the whole group together, or exempt bridges with iommu_group.exempt_classes"},
	{CodeLockdown, ClassUnavailable, []attest.Kind{attest.FailLockdown}, true, "kernel lockdown forbids user-space config-space writes, so the mailbox cannot be used: attest through the kernel's PCI TSM, or boot without lockdown"},
	{CodePermission, ClassUnavailable, []attest.Kind{attest.FailPermission}, true, "the device's extended config space is not readable: run vfio-gate as root"},
	{CodeMailboxBusy, ClassUnavailable, []attest.Kind{attest.FailMailboxBusy}, true, "another agent holds the device's DOE mailbox: find and stop it, then retry"},
	{CodeMailboxOwned, ClassUnavailable, []attest.Kind{attest.FailMailboxOwned}, true, "a kernel driver or the TSM owns the DOE mailbox: use `vfio-gate bind` (it moves the function to vfio-pci before attesting), or unbind the driver (or use the TSM path) and retry"},
	{CodeMailboxTampered, ClassDenied, []attest.Kind{attest.FailMailboxTampered}, false, "another process touched the DOE mailbox during attestation: find it (vfio-gate audit) before retrying"},
	{CodeTimeout, ClassUnavailable, []attest.Kind{attest.FailTimeout}, false, "the device did not answer in time: check that it is healthy, then retry"},
	{CodeDeviceRemoved, ClassUnavailable, []attest.Kind{attest.FailDeviceGone}, false, "the device disappeared during the check: check the hardware, then retry"},
	{CodeTransport, ClassUnavailable, []attest.Kind{attest.FailTransport}, false, "the mailbox transport failed: reset the device or check the link, then retry"},
	{CodeProtocol, ClassAttestation, []attest.Kind{attest.FailProtocol}, false, "the device violated the SPDM protocol: update its firmware, and do not use it until then"},
	{CodeNoDevice, ClassUnavailable, nil, false, "the address names no PCI function: check it (vfio-gate scan lists the functions)"},
	{CodeLock, ClassUnavailable, nil, false, "another vfio-gate process holds the function: retry when it is done"},
	{CodeTPM, ClassTPM, nil, false, "nothing is passed without a record: fix the TPM (--tpm) or the event log, then retry"},
}

func rowOf(c Code) *codeRow {
	for i := range codeTable {
		if codeTable[i].code == c {
			return &codeTable[i]
		}
	}
	return nil
}

func rowOfKind(k attest.Kind) *codeRow {
	for i := range codeTable {
		if slices.Contains(codeTable[i].kinds, k) {
			return &codeTable[i]
		}
	}
	return nil
}

// KindCode is the reason code an attestation failure kind denies with
// (protocol for a kind the table does not know: fail closed).
func KindCode(k attest.Kind) Code {
	if r := rowOfKind(k); r != nil {
		return r.code
	}
	return CodeProtocol
}

// ClassOf is the class of a reason code; an unknown code is a policy deny
// (fail closed: never "merely unavailable").
func ClassOf(c Code) Class {
	if r := rowOf(c); r != nil {
		return r.class
	}
	return ClassDenied
}

// KindClass is the class of an attestation failure kind: the class of its
// code, except that a kind the policy would deny for (no CMA, a failed
// session, tampering) is, without a policy, an attestation failure. This is
// what `vfio-gate attest` exits with.
func KindClass(k attest.Kind) Class {
	if c := ClassOf(KindCode(k)); c != ClassDenied {
		return c
	}
	return ClassAttestation
}

// hostSide reports whether kind says the host could not attest (lockdown,
// permission, a driver or another process holds the mailbox, no mailbox):
// the device is then merely unattested. Every other failure is something
// the device did, and denies even where unattested devices are allowed.
func hostSide(k attest.Kind) bool {
	r := rowOfKind(k)
	return r != nil && r.hostSide
}

// ReasonFor builds a Reason: detail (what was found, may be empty) followed by
// the code's advice, as one sentence. gate uses it for iommu-group-unsafe.
func ReasonFor(c Code, detail string) Reason {
	a := "unclassified failure: do not use this device until the cause is known"
	if r := rowOf(c); r != nil {
		a = r.advice
	}
	if detail == "" {
		return Reason{Code: c, Message: upperFirst(a) + "."}
	}
	return Reason{Code: c, Message: fmt.Sprintf("%s; %s.", upperFirst(detail), a)}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
